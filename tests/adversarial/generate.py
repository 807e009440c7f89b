#!/usr/bin/env python3
"""Writes cases.json, the adversarial corpus. Edit this file, then run it:

    python3 tests/adversarial/generate.py

Each case is one request to the gateway (see README.md for the fields). The
runner is tests/e2e/adversarial.rs.
"""
import json
import pathlib

cases = []


def case(name, expect, **kw):
    kw.setdefault("method", "POST")
    kw.setdefault("path", "/mcp")
    kw.setdefault("auth", "Bearer {{token}}")
    kw.setdefault("body", CALL_ADMIN)
    cases.append({"name": name, "expect": expect, **kw})


def rpc(method, params=None, id_=1):
    msg = {"jsonrpc": "2.0", "id": id_, "method": method}
    if params is not None:
        msg["params"] = params
    return json.dumps(msg, separators=(",", ":"))


CALL_ECHO = rpc("tools/call", {"name": "echo", "arguments": {"message": "hi"}})
CALL_ADMIN = rpc("tools/call", {"name": "admin_reset"})

# ---- positive controls: prove the runner sees what reaches the upstream -----
case("control: allowed tool reaches the upstream", 200, body=CALL_ECHO, upstream=True)
case("control: lowercase bearer scheme is accepted", 200, auth="bearer {{token}}", body=CALL_ECHO, upstream=True)
case("control: admin token may call admin tool", 200, auth="Bearer {{token_admin}}", upstream=True)
case("control: RS256 token accepted", 200, auth="Bearer {{case_token}}", token={"alg": "RS256"}, body=CALL_ECHO, upstream=True)
case("control: client response passes with route scopes", 200, body='{"jsonrpc":"2.0","id":"s1","result":{}}', upstream=True)

# ---- JWTs: every one would be allowed to call `echo` if it were valid ---------
def jwt(name, expect=401, **token):
    case("jwt: " + name, expect, auth="Bearer {{case_token}}", token=token, body=CALL_ECHO)

jwt("alg none, empty signature", alg="none", sig="empty")
for spelling in ["None", "NONE", "nOnE"]:
    jwt(f"alg {spelling}", alg="none", header={"alg": spelling}, sig="empty")
jwt("alg none with a signature copied from a valid token", alg="none", sig="copy-valid")
jwt("alg missing", header={"alg": None})
jwt("alg unknown", header={"alg": "ES999"})
for hs in ["HS256", "HS384", "HS512"]:
    jwt(f"{hs} signed with the RSA public JWK (key confusion)", alg=f"{hs}-public", header={"kid": "r1"})
jwt("HS256 with the RSA public key and no kid", alg="HS256-public", header={"kid": None})
jwt("HS256 signed with the EC public JWK", alg="HS256-public-ec", header={"kid": "k1"})
jwt("RS256 header on the EC key", header={"alg": "RS256"})
jwt("ES256 header on the RSA key", alg="RS256", header={"alg": "ES256", "kid": "r1"})
jwt("PS256 on an RS256-pinned key", alg="PS256")
jwt("ES384 header, ES256 signature", header={"alg": "ES384"})
for kid in ["../../../../etc/passwd", "/dev/null", "' OR '1'='1", "k1' --", "k1\u0000", "", "k1 ", "K1", "x" * 5000, "${jndi:ldap://x}"]:
    jwt(f"kid {kid[:24]!r} signed by an attacker key", key="attacker", header={"kid": kid})
jwt("no kid, attacker key", key="attacker", header={"kid": None})
jwt("jku injection to attacker keys", key="attacker", header={"jku": "https://attacker.example/jwks.json", "kid": "attacker"})
jwt("x5u injection", key="attacker", header={"x5u": "https://attacker.example/cert.pem", "kid": "attacker"})
jwt("embedded jwk with the attacker key", key="attacker", header={"jwk": "{{attacker_jwk}}", "kid": "attacker"})
jwt("embedded jwk, kid of a real key", key="attacker", header={"jwk": "{{attacker_jwk}}", "kid": "k1"})
jwt("x5c with junk", key="attacker", header={"x5c": ["MIIB"], "kid": "k1"})
jwt("expired an hour ago", claims={"exp": "{{now-3600}}"})
jwt("expired beyond the 30s leeway", claims={"exp": "{{now-45}}"})
jwt("not yet valid (nbf in an hour)", claims={"nbf": "{{now+3600}}"})
jwt("iat a day in the future", claims={"iat": "{{now+86400}}"})
jwt("exp missing", claims={"exp": None})
jwt("exp as a string", claims={"exp": "9999999999"})
jwt("exp as an object", claims={"exp": {"v": 1}})
jwt("nbf as a string", claims={"nbf": "0"})
jwt("aud another resource", claims={"aud": "https://other.example.test/mcp"})
jwt("aud array without this resource", claims={"aud": ["https://a.example", "https://b.example"]})
jwt("aud missing", claims={"aud": None})
jwt("aud empty array", claims={"aud": []})
jwt("aud null", claims={"aud": "{{null}}"})
jwt("aud number", claims={"aud": 42})
jwt("aud with a trailing slash", claims={"aud": "https://mcp.example.test/mcp/"})
jwt("aud in upper case", claims={"aud": "HTTPS://MCP.EXAMPLE.TEST/MCP"})
jwt("aud as a prefix", claims={"aud": "https://mcp.example.test/mc"})
jwt("iss with a trailing slash", claims={"iss": "https://issuer.example.test/"})
jwt("iss in upper case", claims={"iss": "HTTPS://ISSUER.EXAMPLE.TEST"})
jwt("iss missing", claims={"iss": None})
jwt("iss as an array", claims={"iss": ["https://issuer.example.test"]})
jwt("iss with whitespace", claims={"iss": " https://issuer.example.test"})
jwt("untrusted issuer with its own key", key="attacker", claims={"iss": "https://evil.example.test"})
jwt("typ JWE", header={"typ": "JWE"})
jwt("typ secevent+jwt", header={"typ": "secevent+jwt"})
jwt("cty JWT (nested)", header={"cty": "JWT"})
jwt("crit header", header={"crit": ["exp"]})
jwt("crit with an unknown extension", header={"crit": ["b64"], "b64": False})
jwt("duplicate iss claim (second one trusted)", raw_payload='{"iss":"https://evil.example.test","iss":"https://issuer.example.test","sub":"mallory","aud":"https://mcp.example.test/mcp","scope":"mcp:tools","exp":{{now+3600}}}')
jwt("duplicate aud claim", raw_payload='{"iss":"https://issuer.example.test","sub":"mallory","aud":"https://other.example","aud":"https://mcp.example.test/mcp","scope":"mcp:tools","exp":{{now+3600}}}')
jwt("duplicate scope claim", raw_payload='{"iss":"https://issuer.example.test","sub":"mallory","aud":"https://mcp.example.test/mcp","scope":"none","scope":"mcp:tools","exp":{{now+3600}}}')
jwt("duplicate alg header", raw_header='{"alg":"none","alg":"ES256","kid":"k1","typ":"at+jwt"}')
jwt("payload is another JWT (nested)", raw_payload='"{{token}}"')
jwt("payload is an array", raw_payload='[1,2,3]')
jwt("payload not JSON", raw_payload='not json')
jwt("signature tampered", sig="tampered")
jwt("signature empty", sig="empty")
jwt("signature from another valid token", sig="copy-valid", claims={"sub": "mallory"})
jwt("huge token (20 KB claim)", claims={"pad": "x" * 20000})
case("jwt: bad base64 in the header", 401, auth="Bearer e*J.e30.AAAA")
case("jwt: padding inside a segment", 401, auth="Bearer eyJhbGciOiJFUzI1NiJ9=.e30.AAAA")
case("jwt: two segments", 401, auth="Bearer eyJhbGciOiJFUzI1NiJ9.e30")
case("jwt: four segments", 401, auth="Bearer a.b.c.d")
case("jwt: five segments (JWE shape)", 401, auth="Bearer a.b.c.d.e")
case("jwt: empty segments", 401, auth="Bearer ..")
case("jwt: only dots", 401, auth="Bearer .....")
case("jwt: opaque random string", 401, auth="Bearer 2YotnFZFEjr1zCsicMWpAA")
case("jwt: valid token with a suffix", 401, auth="Bearer {{token}}x", body=CALL_ECHO)
case("jwt: valid token twice joined", 401, auth="Bearer {{token}}.{{token}}", body=CALL_ECHO)

# ---- Authorization header variants (admin call: accepted tokens get 403) --------
case("auth: BEARER in capitals accepted, then denied by policy", 403, auth="BEARER {{token}}")
case("auth: two spaces after the scheme", 401, auth="Bearer  {{token}}")
case("auth: tab after the scheme", 401, auth="Bearer\t{{token}}")
case("auth: comma-joined second credential", 401, auth="Bearer {{token}}, Bearer {{token_admin}}")
case("auth: parameter after the token", 401, auth="Bearer {{token}}; admin=1")
case("auth: quoted token", 401, auth='Bearer "{{token}}"')
case("auth: scheme only", 401, auth="Bearer")
case("auth: Basic credentials", 401, auth="Basic YWRtaW46YWRtaW4=")
case("auth: Token scheme", 401, auth="Token {{token_admin}}")
case("auth: DPoP scheme", 401, auth="DPoP {{token_admin}}")
case("auth: no header", 401, auth=None)
case("auth: empty header", 401, auth="")
case("auth: two Authorization headers", 400, headers=[["authorization", "Bearer {{token_admin}}"]])
case("auth: token in the query string", 400, path="/mcp?access_token={{token_admin}}", auth=None)
case("auth: token in the query string and the header", 400, path="/mcp?access_token={{token_admin}}")
case("auth: token in the query, upper-case name", 400, path="/mcp?ACCESS_TOKEN={{token_admin}}", auth=None)
case("auth: token in a form body", 401, auth=None, headers=[["content-type", "application/x-www-form-urlencoded"]], body="access_token={{token_admin}}")
case("auth: token in the JSON body", 401, auth=None, body='{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"admin_reset"},"access_token":"{{token_admin}}"}')
case("auth: only Proxy-Authorization", 401, auth=None, headers=[["proxy-authorization", "Bearer {{token_admin}}"]])
case("auth: X-Forwarded-User spoofing", 401, auth=None, headers=[["x-forwarded-user", "admin"], ["x-mcp-subject", "admin"]])

# ---- JSON-RPC (valid token with mcp:tools only) -------------------------------
def body(name, expect, text, **kw):
    case("json-rpc: " + name, expect, body=text, **kw)

body("duplicate method, denied one second", 400, '{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call","params":{"name":"admin_reset"}}')
body("duplicate method, denied one first", 400, '{"jsonrpc":"2.0","id":1,"method":"tools/call","method":"tools/list","params":{"name":"admin_reset"}}')
body("duplicate method via an escaped key", 400, '{"jsonrpc":"2.0","id":1,"method":"tools/list","m\\u0065thod":"tools/call","params":{"name":"admin_reset"}}')
body("duplicate params.name", 400, '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","name":"admin_reset"}}')
body("duplicate params", 400, '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"},"params":{"name":"admin_reset"}}')
body("duplicate key deep in arguments", 400, '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"a":{"b":1,"b":2}}}}')
body("duplicate id", 400, '{"jsonrpc":"2.0","id":1,"id":2,"method":"tools/call","params":{"name":"echo"}}')
body("duplicate jsonrpc", 400, '{"jsonrpc":"2.0","jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}')
body("UTF-8 byte order mark", 400, "\ufeff" + CALL_ECHO)
body("escaped method tools\\u002fcall is tools/call", 403, '{"jsonrpc":"2.0","id":1,"method":"tools\\u002fcall","params":{"name":"admin_reset"}}')
body("escaped tool name", 403, '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"admin\\u005freset"}}')
body("escaped keys", 403, '{"jsonrpc":"2.0","id":1,"m\\u0065thod":"tools/call","p\\u0061rams":{"n\\u0061me":"admin_reset"}}')
body("fully escaped method", 403, '{"jsonrpc":"2.0","id":1,"method":"\\u0074\\u006f\\u006f\\u006c\\u0073\\u002f\\u0063\\u0061\\u006c\\u006c","params":{"name":"admin_reset"}}')
body("lone surrogate in method", 400, '{"jsonrpc":"2.0","id":1,"method":"tools/call\\ud800","params":{"name":"admin_reset"}}')
body("number id, denied tool", 403, rpc("tools/call", {"name": "admin_reset"}, 42))
body("negative float id, denied tool", 403, '{"jsonrpc":"2.0","id":-1.5e10,"method":"tools/call","params":{"name":"admin_reset"}}')
body("null id, denied tool", 403, '{"jsonrpc":"2.0","id":null,"method":"tools/call","params":{"name":"admin_reset"}}')
body("string id, denied tool", 403, rpc("tools/call", {"name": "admin_reset"}, "x"))
body("huge number id, denied tool", 403, '{"jsonrpc":"2.0","id":123456789012345678901234567890,"method":"tools/call","params":{"name":"admin_reset"}}')
body("object id", 400, '{"jsonrpc":"2.0","id":{"a":1},"method":"tools/call","params":{"name":"echo"}}')
body("array id", 400, '{"jsonrpc":"2.0","id":[1],"method":"tools/call","params":{"name":"echo"}}')
body("boolean id", 400, '{"jsonrpc":"2.0","id":true,"method":"tools/call","params":{"name":"echo"}}')
body("notification smuggling a denied tool", 403, '{"jsonrpc":"2.0","method":"tools/call","params":{"name":"admin_reset"}}')
body("nesting 100 deep", 400, '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":' + "[" * 100 + "]" * 100 + "}}")
body("nesting 5000 deep", 400, '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":' + "[" * 5000 + "]" * 5000 + "}}")
body("huge argument array, denied tool", 403, '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"admin_reset","arguments":{"a":[' + ",".join(["1"] * 50000) + "]}}}")
body("batch of 33", 400, "[" + ",".join([CALL_ECHO] * 33) + "]")
body("batch of 1000", 400, "[" + ",".join([CALL_ECHO] * 1000) + "]")
body("batch smuggling a denied call last", 403, "[" + CALL_ECHO + "," + CALL_ADMIN + "]")
body("batch smuggling a denied call first", 403, "[" + CALL_ADMIN + "," + CALL_ECHO + "]")
body("batch smuggling a denied notification", 403, "[" + CALL_ECHO + ',{"jsonrpc":"2.0","method":"tools/call","params":{"name":"admin_reset"}}]')
body("batch with a duplicate-key element", 400, "[" + CALL_ECHO + ',{"jsonrpc":"2.0","id":2,"method":"tools/list","method":"tools/call","params":{"name":"admin_reset"}}]')
body("batch with an escaped denied call", 403, "[" + CALL_ECHO + ',{"jsonrpc":"2.0","id":2,"method":"tools\\/call","params":{"name":"admin_reset"}}]')
body("nested batch", 400, "[[" + CALL_ECHO + "]]")
body("empty batch", 400, "[]")
body("batch of numbers", 400, "[1,2]")
body("batch of strings", 400, '["tools/call"]')
body("method not a string", 400, '{"jsonrpc":"2.0","id":1,"method":["tools/call"],"params":{"name":"admin_reset"}}')
body("jsonrpc missing", 400, '{"id":1,"method":"tools/call","params":{"name":"echo"}}')
body("jsonrpc 1.0", 400, '{"jsonrpc":"1.0","id":1,"method":"tools/call","params":{"name":"echo"}}')
body("jsonrpc as a number", 400, '{"jsonrpc":2.0,"id":1,"method":"tools/call","params":{"name":"echo"}}')
body("tools/call without params", 400, '{"jsonrpc":"2.0","id":1,"method":"tools/call"}')
body("tools/call without a name", 400, '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}')
body("tools/call with a number name", 400, '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":1}}')
body("tools/call with an object name", 400, '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":{"x":"echo"}}}')
body("tools/call with a null name", 400, '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":null}}')
body("tools/call with positional params", 400, '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":["admin_reset"]}')
body("unlisted tool", 403, rpc("tools/call", {"name": "drop_database"}))
body("tool name differing in case", 403, rpc("tools/call", {"name": "Echo"}))
body("tool name with a trailing space", 400, rpc("tools/call", {"name": "echo "}))
body("tool name with a NUL", 400, '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo\\u0000"}}')
body("tool name too long", 400, rpc("tools/call", {"name": "a" * 9000}))
body("resources/read outside the allowed tree", 403, rpc("resources/read", {"uri": "file:///private/secret.txt"}))
body("resources/read with dot-segments", 400, rpc("resources/read", {"uri": "file:///public/../private/secret.txt"}))
body("resources/read with encoded dot-segments", 400, rpc("resources/read", {"uri": "file:///public/%2e%2e/private/secret.txt"}))
body("resources/read with an encoded slash", 400, rpc("resources/read", {"uri": "file:///public%2f..%2fprivate"}))
body("resources/read with backslashes", 400, rpc("resources/read", {"uri": "file:///public\\..\\private"}))
body("resources/read with a uri array", 400, '{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":["file:///public/a"]}}')
body("resources/subscribe outside the tree", 403, rpc("resources/subscribe", {"uri": "file:///private/secret.txt"}))
body("prompts/get unlisted", 403, rpc("prompts/get", {"name": "admin_prompt"}))
body("completion on an unlisted prompt", 403, rpc("completion/complete", {"ref": {"type": "ref/prompt", "name": "admin_prompt"}, "argument": {"name": "a", "value": ""}}))
body("completion on a private resource", 403, rpc("completion/complete", {"ref": {"type": "ref/resource", "uri": "file:///private/x"}, "argument": {"name": "a", "value": ""}}))
body("completion with an unknown ref type", 400, rpc("completion/complete", {"ref": {"type": "ref/tool", "name": "admin_reset"}}))
body("method needing admin scope", 403, rpc("logging/setLevel", {"level": "debug"}))
body("trailing garbage", 400, CALL_ECHO + "x")
body("two objects concatenated", 400, CALL_ECHO + CALL_ADMIN)
body("NaN literal", 400, '{"jsonrpc":"2.0","id":NaN,"method":"tools/call","params":{"name":"echo"}}')
body("comment", 400, '{"jsonrpc":"2.0","id":1,/*x*/"method":"tools/call","params":{"name":"echo"}}')
body("single quotes", 400, "{'jsonrpc':'2.0','id':1,'method':'tools/call','params':{'name':'echo'}}")
body("empty body", 400, "")
body("null body", 400, "null")
body("a bare string", 400, '"tools/call"')
body("request carrying a result", 400, '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"admin_reset"},"result":{}}')
body("response with both result and error", 400, '{"jsonrpc":"2.0","id":1,"result":{},"error":{"code":1,"message":"x"}}')
body("response without id", 400, '{"jsonrpc":"2.0","result":{}}')
body("Mcp-Method disagrees with the body", 400, CALL_ADMIN, headers=[["mcp-method", "tools/list"]])
body("Mcp-Name disagrees with the body", 400, CALL_ADMIN, headers=[["mcp-method", "tools/call"], ["mcp-name", "echo"]])
body("Mcp-Name base64 disagrees", 400, CALL_ADMIN, headers=[["mcp-name", "=?base64?ZWNobw==?="]])
body("Mcp-Name invalid base64", 400, CALL_ADMIN, headers=[["mcp-name", "=?base64?***?="]])
body("two Mcp-Method headers", 400, CALL_ECHO, headers=[["mcp-method", "tools/call"], ["mcp-method", "tools/call"]])
body("Mcp-Name on a batch", 400, "[" + CALL_ECHO + "]", headers=[["mcp-name", "echo"]])
body("matching MCP headers, denied tool", 403, CALL_ADMIN, headers=[["mcp-method", "tools/call"], ["mcp-name", "admin_reset"]])

# ---- reading differentials: bytes an upstream would read differently --------
# (README "Security model", canonicalization rules)
UTF7_SMUGGLE = ('{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":'
                '{"message":"x+ACIAfQ-,+ACI-name+ACI-:+ACI-admin_reset+ACI-,+ACI-z+ACI-:{+ACI-a+ACI-:+ACI-"}}}')
for charset in ["utf-7", "UTF-7", "utf-16", "utf-16le", "utf-32", "iso-8859-1", "latin1", "ascii", '"utf-7"']:
    body(f"charset={charset}", 415, UTF7_SMUGGLE, content_type=f"application/json; charset={charset}")
for ctype in ["text/plain", "application/json-rpc", "application/x-www-form-urlencoded", "application/json; boundary=x"]:
    body(f"Content-Type {ctype}", 415, CALL_ECHO, content_type=ctype)
body("two Content-Types", 415, CALL_ECHO, headers=[["content-type", "application/json; charset=utf-7"]])
for coding in ["gzip", "x-gzip", "deflate", "br", "identity, gzip", "GZIP"]:
    body(f"Content-Encoding {coding}", 415, CALL_ECHO, headers=[["content-encoding", coding]])
body("control: charset=utf-8 is read as it is", 403, CALL_ADMIN, content_type="application/json; charset=UTF-8")
body("control: no Content-Type, canonical one sent upstream", 200, CALL_ECHO, content_type=None, upstream=True)
case("GET with a body", 400, method="GET", body=CALL_ADMIN, auth="Bearer {{token_admin}}")
case("DELETE with a body", 400, method="DELETE", body=CALL_ADMIN, auth="Bearer {{token_admin}}")
for name, method in [("NUL", "tools/call\u0000"), ("LF", "tools/call\n"), ("trailing space", "tools/call "),
                     ("leading TAB", "\ttools/call"), ("DEL", "tools/call\u007f"), ("NEL", "tools/call\u0085"),
                     ("NUL notification", "notifications/initialized\u0000")]:
    body(f"method with {name}", 400, '{"jsonrpc":"2.0","id":1,"method":"' + method + '","params":{"name":"admin_reset"}}')
for name, tool in [("leading space", " admin_reset"), ("TAB", "admin_reset\t"), ("CR", "admin_reset\r"), ("NBSP", "admin_reset\u00a0"),
                   ("C1", "admin\u009freset")]:
    body(f"tool name with {name}", 400, '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"' + tool + '"}}')
for uri in ["file:///public/.\t./private/secret.txt", "file:///public/.\r./private/secret.txt", "file:///public/.\n./private/secret.txt",
            " file:///private/secret.txt", "file:///private/secret.txt ", "\u0000file:///public/x", "file:///public/x\u0000",
            "file:///public/%2E%2e/private/secret.txt", "file:///public/.%2E/private/secret.txt", "file:///public/%2e/x",
            "file:///public/x%2Fy", "file:///public/x%5Cy", "file:///public/x%3Fy", "file:///public/x%23y", "file:///public/x%25y",
            "file:///public/x%00y", "file:///public/x%FFy", "file:///public/%70rivate", "file:///publi%63/x", "relative/x"]:
    body(f"resources/read {uri[:40]!r}", 400, '{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"' + uri + '"}}')
body("resources/read, scheme case folded to a public URI", 200, rpc("resources/read", {"uri": "FILE:///public/a.txt"}), upstream=True)
body("resources/read, scheme case of a private URI", 403, rpc("resources/read", {"uri": "FILE:///private/secret.txt"}))
body("resources/read, localhost file host of a private URI", 403, rpc("resources/read", {"uri": "file://localhost/private/secret.txt"}))
body("subscriptions/listen to a private URI", 403, rpc("subscriptions/listen", {"notifications": {"resourceSubscriptions": ["file:///public/a", "file:///private/secret.txt"]}}))
body("subscriptions/listen with a dot-segment", 400, rpc("subscriptions/listen", {"notifications": {"resourceSubscriptions": ["file:///public/../private/x"]}}))
body("subscriptions/listen with a non-string subscription", 400, rpc("subscriptions/listen", {"notifications": {"resourceSubscriptions": [{"uri": "file:///private/x"}]}}))
body("control: subscriptions/listen to public URIs", 200, rpc("subscriptions/listen", {"notifications": {"resourceSubscriptions": ["file:///public/a"]}}), upstream=True)
for method in ["tools/Call", "tools/call/", "Tools/call", "x-admin/reset", "tools\u2215call", "rpc.discover"]:
    body(f"unknown method {method!r} under unknown_methods: deny", 403, rpc(method, {"name": "admin_reset"}))
for q in ["sessionId=abc", "session_id=abc", "sessionid=abc", "session%49d=abc"]:
    case(f"legacy session id in the query ({q})", 400, path=f"/mcp?{q}", body=CALL_ECHO)
for q in ["access%5Ftoken={{token_admin}}", "x=1;access_token={{token_admin}}"]:
    case(f"encoded token in the query ({q[:14]})", 400, path=f"/mcp?{q}", auth=None, body=CALL_ECHO)

# ---- worst-case sizes for each parser (bodies built by the runner: `body_gen`) --
for gen, expect, reaches in [("max_keys", 200, True), ("many_objects", 200, True), ("max_depth", 200, True),
                             ("escape_run", 200, True), ("over_depth", 400, False), ("over_cap", 413, False),
                             ("duplicate_after_max_keys", 400, False)]:
    case(f"worst case: {gen}", expect, body_gen=gen, body="", upstream=reaches)

# ---- HTTP framing and paths (raw bytes on the socket) ---------------------------
def raw(name, expect, text):
    cases.append({"name": "http: " + name, "expect": expect, "raw": text})

ADMIN_LEN = len(CALL_ADMIN)
# hyper frames by Transfer-Encoding alone and closes the connection afterwards
# (RFC 9112 §6.1), and the gateway re-frames what it forwards, so the body
# that is authorized is the body that is forwarded: the admin call is denied.
raw("Transfer-Encoding and Content-Length together", 403,
    "POST /mcp HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {{token}}\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
    + f"{ADMIN_LEN:x}\r\n{CALL_ADMIN}\r\n0\r\n\r\n")
raw("Content-Length and Transfer-Encoding, echo framed by CL", 403,
    f"POST /mcp HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {{{{token}}}}\r\nContent-Length: {len(CALL_ECHO)}\r\nTransfer-Encoding: chunked\r\n\r\n"
    + f"{ADMIN_LEN:x}\r\n{CALL_ADMIN}\r\n0\r\n\r\n")
raw("Transfer-Encoding not chunked", 400,
    "POST /mcp HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {{token_admin}}\r\nTransfer-Encoding: gzip\r\n\r\n" + CALL_ADMIN)
raw("two different Content-Lengths", 400,
    f"POST /mcp HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {{{{token_admin}}}}\r\nContent-Length: {ADMIN_LEN}\r\nContent-Length: 5\r\n\r\n" + CALL_ADMIN)
raw("Content-Length shorter than the body (pipelined smuggling)", 400,
    "POST /mcp HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {{token}}\r\nContent-Length: 10\r\n\r\n" + CALL_ADMIN)
raw("space before the header colon", 400,
    "POST /mcp HTTP/1.1\r\nHost: gw\r\nAuthorization : Bearer {{token_admin}}\r\nContent-Length: 2\r\n\r\n{}")
raw("obs-fold in Authorization", 400,
    "POST /mcp HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer\r\n {{token_admin}}\r\nContent-Length: 2\r\n\r\n{}")
raw("NUL byte in a header", 400,
    "POST /mcp HTTP/1.1\r\nHost: gw\r\nX-A: a\u0000b\r\nAuthorization: Bearer {{token_admin}}\r\nContent-Length: 2\r\n\r\n{}")
raw("non-ASCII bytes in Authorization", 401,
    "POST /mcp HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer \u00ff\u00fe\r\nContent-Length: 2\r\n\r\n{}")
raw("bare LF line endings, denied call", 403,
    f"POST /mcp HTTP/1.1\nHost: gw\nAuthorization: Bearer {{{{token}}}}\nContent-Length: {ADMIN_LEN}\n\n" + CALL_ADMIN)
raw("HTTP/1.0 without Host, denied call", 403,
    f"POST /mcp HTTP/1.0\r\nAuthorization: Bearer {{{{token}}}}\r\nContent-Length: {ADMIN_LEN}\r\n\r\n" + CALL_ADMIN)
raw("absolute-form target, denied call", 403,
    f"POST http://evil.example/mcp HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {{{{token}}}}\r\nContent-Length: {ADMIN_LEN}\r\n\r\n" + CALL_ADMIN)
for path in ["/mcp/../admin", "/admin/../mcp", "//mcp", "/./mcp", "/mcp/", "/MCP", "/mcp;a=b", "/%6dcp", "/mcp%2f", "/mcp%00",
             "/mcp/%2e%2e/admin", "/%2e/mcp", "/.well-known/oauth-protected-resource/../../mcp", "/mcp/..%2fadmin"]:
    raw(f"path {path}", 404,
        f"POST {path} HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {{{{token_admin}}}}\r\nContent-Length: {ADMIN_LEN}\r\n\r\n" + CALL_ADMIN)
raw("request line of 100 KB", 431,
    "POST /mcp?" + "a" * 100_000 + " HTTP/1.1\r\nHost: gw\r\nContent-Length: 2\r\n\r\n{}")
raw("CONNECT method (no route for an authority-form target)", 404, "CONNECT gw:443 HTTP/1.1\r\nHost: gw:443\r\nAuthorization: Bearer {{token_admin}}\r\n\r\n")
raw("TRACE method", 405, "TRACE /mcp HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {{token_admin}}\r\n\r\n")

# HTTP/2 (prior knowledge, h2c): the same path tricks must not route either.
for path in ["/mcp/../admin", "//mcp", "/mcp/", "/%6dcp"]:
    case(f"h2: path {path}", 404, path=path, auth="Bearer {{token_admin}}", h2=True)
case("h2: denied call", 403, h2=True)
case("h2: token in the query", 400, path="/mcp?access_token={{token_admin}}", auth=None, h2=True)

out = pathlib.Path(__file__).with_name("cases.json")
out.write_text(json.dumps(cases, indent=1, ensure_ascii=False) + "\n")
print(f"{len(cases)} cases -> {out}")
