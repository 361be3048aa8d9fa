// The WebRTC application the 3rdWWS serves at step 11: a JsSIP user agent (jssip.js, bundled from
// the npm package at build time) that registers over WSS the way ../shared/BINDING.md says.
//   relay:  wss://<3rdWWS>/sip with the session cookie; the 3rdWWS adds the access token.
//   direct: GET /webrtc/session -> {wsf_url, access_token}; the REGISTER carries the token itself
//           (RFC 8898 2.1 "Bearer <token>", or TS 24.371 A.3.2 "Bearer access_token=...").
// The page's data-* attributes carry what the 3rdWWS knows: signalling mode, the user's operator
// Web ID (the AoR, PICS sip.client_aor = web_id), the home domain and the Bearer syntax.
// #status shows the outcome for a person or a test: "registered", "failed: <cause>".
(async () => {
  const d = document.body.dataset;
  const status = (t) => { document.getElementById("status").textContent = t; };
  let url = `wss://${location.host}/sip`, token = null;
  if (d.signalling === "direct") {
    const resp = await fetch("/webrtc/session", {credentials: "same-origin"});
    if (!resp.ok) { status(`failed: /webrtc/session answered ${resp.status}`); return; }
    const s = await resp.json();
    url = s.wsf_url; token = s.access_token;
  }
  const socket = new JsSIP.WebSocketInterface(url);  // subprotocol "sip" (RFC 7118 4)
  const ua = new JsSIP.UA({
    sockets: [socket],
    uri: `sip:${d.webId}`,
    registrar_server: `sip:${d.homeDomain}`,
    register: false,
    register_expires: 600,
    session_timers: false,
    user_agent: "JsSIP (ims-conformance reference 3rdWWS)",
  });
  if (token) {
    const credentials = d.bearerSyntax === "ts24371" ? `Bearer access_token="${token}"` : `Bearer ${token}`;
    ua.registrator().setExtraHeaders([`Authorization: ${credentials}`]);
  }
  ua.on("connected", () => { status("connected"); ua.register(); });
  ua.on("registered", (e) => {
    status("registered");
    document.getElementById("identities").textContent = e.response.getHeader("P-Associated-URI") || "";
  });
  ua.on("registrationFailed", (e) => status(`failed: ${e.cause}${e.response ? " " + e.response.status_code : ""}`));
  ua.on("disconnected", () => { if (!ua.isRegistered()) status("disconnected"); });
  window.addEventListener("pagehide", () => ua.stop());
  status("connecting");
  ua.start();
})();
