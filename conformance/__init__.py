"""ims-conformance: a conformance test harness for WebRTC access to IMS (3GPP TR 23.701)."""

__version__ = "0.1.0"
