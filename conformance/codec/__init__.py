"""Sans-IO codecs shared by the harness and the reference network (bytes in, typed objects out).

Nothing here opens a socket or imports another `conformance` module: `refnet` imports this package too.
"""
