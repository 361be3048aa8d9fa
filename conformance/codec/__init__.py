"""Sans-IO codecs of the harness (bytes in, typed objects out), used alike by the drivers and the
capture so a message looks the same on both paths. Nothing here opens a socket.

The reference network has its own SIP layer (refnet/sip/), written separately: a codec defect here
then shows as a failing verdict against the reference network instead of being agreed with.
"""
