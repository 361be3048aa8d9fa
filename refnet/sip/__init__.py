"""The reference network's own SIP message layer: messages, header values, URIs, stream framing.

The reference network meets the harness only on the wire (the architecture rule: refnet never imports
`conformance`). Had it parsed SIP with the harness's codec, both sides would agree on every codec
bug and a codec defect could never show up as a failing verdict against the reference network.
So this package is written separately, from RFC 3261, and only as far as the nodes need it.
"""

from .checks import validate
from .framing import FramingFailure, StreamFramer
from .headers import (
    Credentials,
    HeaderError,
    NameAddr,
    Via,
    parse_credentials,
    parse_cseq,
    parse_name_addr,
    parse_via,
    split_list,
)
from .message import (
    Headers,
    Message,
    Request,
    Response,
    SipError,
    header_key,
    make_response,
    parse,
    serialize,
)
from .params import Params
from .uri import OtherUri, SipUri, UriError, parse_uri, uri_equal

__all__ = [
    "Credentials", "FramingFailure", "HeaderError", "Headers", "Message", "NameAddr", "OtherUri", "Params",
    "Request", "Response", "SipError", "SipUri", "StreamFramer", "UriError", "Via", "header_key",
    "make_response", "parse", "parse_credentials", "parse_cseq", "parse_name_addr", "parse_uri",
    "parse_via", "serialize", "split_list", "uri_equal", "validate",
]
