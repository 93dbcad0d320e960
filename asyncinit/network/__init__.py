"""Container networking: loopback here (no imports beyond the stdlib), veth with pyroute2 later."""
