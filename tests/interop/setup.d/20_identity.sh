# PyJWT and cryptography verify our tokens and signatures from the published keys.
need_py jwt pyjwt
need_py cryptography cryptography
