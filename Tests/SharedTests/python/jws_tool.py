#!/usr/bin/env python3
"""Independent ES256 JWS checker for Lanyard's crypto tests (PyJWT + cryptography).

  jws_tool.py verify PUBLIC_KEY_PEM_FILE TOKEN   -> prints the payload, exit 0 if the signature verifies
  jws_tool.py sign PRIVATE_KEY_PEM_FILE PAYLOAD_JSON -> prints a compact ES256 JWS
"""
import json
import sys

import jwt  # PyJWT


def main() -> int:
    if len(sys.argv) != 4 or sys.argv[1] not in ("verify", "sign"):
        print(__doc__, file=sys.stderr)
        return 2
    command, key_file, arg = sys.argv[1:]
    with open(key_file, "rb") as handle:
        key = handle.read()
    if command == "verify":
        try:
            payload = jwt.PyJWS().decode(arg, key, algorithms=["ES256"])
        except jwt.InvalidTokenError as error:
            print(f"invalid: {error!r}", file=sys.stderr)
            return 1
        sys.stdout.write(payload.decode("utf-8"))
        return 0
    token = jwt.encode(json.loads(arg), key, algorithm="ES256", headers={"kid": "pyjwt-test"})
    sys.stdout.write(token)
    return 0


if __name__ == "__main__":
    sys.exit(main())
