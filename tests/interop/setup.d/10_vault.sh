# oathtool computes the TOTP codes our vault must agree with.
need_cmd oathtool oathtool
