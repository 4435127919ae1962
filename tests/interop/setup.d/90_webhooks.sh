# Webhooks: deliveries are verified by the Standard Webhooks reference library for Python.
need_py standardwebhooks standardwebhooks
