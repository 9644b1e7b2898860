"""Server-rendered pages behind the links in emails (verify an address, reset a password)."""
