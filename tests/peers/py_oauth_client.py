"""Real MCP client with OAuth (official Python SDK, `mcp` package: OAuthClientProvider)
for the gateway's built-in authorization server, no human: 401 -> protected-resource
metadata -> authorization server metadata -> dynamic registration -> the browser part
(played here: the consent page's form is read and "Continue" pressed, the identity
provider's redirects followed with a cookie store) -> code + PKCE -> token -> tool call.

Usage: .venv/bin/python py_oauth_client.py <mcp-url> call <tool> <json-args>
Output: `RESULT <json of result.content>` and `SCOPE <granted scope>`, exit 0;
`ERROR <message>` and exit 2 on failure; usage errors exit 64.

Cookies are kept by hand: the gateway's `__Host-` cookie is `Secure`, which Python's
cookie jar will not send over http://127.0.0.1 (browsers treat loopback as secure).
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import sys
from urllib.parse import parse_qs, urljoin, urlparse

import httpx2

from mcp.client import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

REDIRECT = "http://127.0.0.1:9/py-callback"  # never contacted


class Memory:
    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


class Browser:
    """Follows the authorization request like a person with a browser would."""

    def __init__(self) -> None:
        self.cookies: dict[str, str] = {}
        self.result: AuthorizationCodeResult | None = None

    def _keep(self, response: httpx2.Response) -> None:
        for line in response.headers.get_list("set-cookie"):
            name, _, rest = line.partition("=")
            value = rest.split(";", 1)[0]
            if value:
                self.cookies[name.strip()] = value
            else:
                self.cookies.pop(name.strip(), None)

    def _headers(self) -> dict[str, str]:
        return {"cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())} if self.cookies else {}

    async def authorize(self, url: str) -> None:
        async with httpx2.AsyncClient(follow_redirects=False, timeout=30.0) as http:
            response = await http.get(url, headers=self._headers())
            for _ in range(12):
                self._keep(response)
                if response.status_code == 200 and "text/html" in response.headers.get("content-type", ""):
                    page = response.text
                    form = re.search(r'<form method="post" action="([^"]+)">(.*?)</form>', page, re.S)
                    if not form:
                        raise RuntimeError(f"a page without a consent form at {url}")
                    fields = {html.unescape(k): html.unescape(v)
                              for k, v in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form.group(2))}
                    fields["decision"] = "allow"
                    url = urljoin(url, html.unescape(form.group(1)))
                    response = await http.post(url, data=fields, headers=self._headers())
                    continue
                location = response.headers.get("location")
                if response.status_code not in (301, 302, 303, 307, 308) or not location:
                    raise RuntimeError(f"sign-in stopped at HTTP {response.status_code} {url}: {response.text[:300]}")
                url = urljoin(url, location)
                if url.startswith(REDIRECT):
                    q = parse_qs(urlparse(url).query)
                    if "error" in q:
                        raise RuntimeError(f"authorization error: {q['error'][0]}")
                    self.result = AuthorizationCodeResult(
                        code=q["code"][0], state=q.get("state", [None])[0], iss=q.get("iss", [None])[0]
                    )
                    return
                response = await http.get(url, headers=self._headers())
        raise RuntimeError("too many redirects")

    async def callback(self) -> AuthorizationCodeResult:
        if self.result is None:
            raise RuntimeError("no authorization result")
        result, self.result = self.result, None
        return result


async def run(url: str, tool: str, arguments: dict) -> tuple[object, str]:
    browser = Browser()
    storage = Memory()
    provider = OAuthClientProvider(
        server_url=url,
        client_metadata=OAuthClientMetadata(
            client_name="gateway-e2e-python-oauth-client",
            redirect_uris=[REDIRECT],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=browser.authorize,
        callback_handler=browser.callback,
    )
    async with httpx2.AsyncClient(auth=provider, timeout=httpx2.Timeout(30.0, read=120.0)) as http:
        async with Client(streamable_http_client(url, http_client=http), mode="legacy", cache=None) as client:
            result = await client.call_tool(tool, arguments)
            content = [c.model_dump(by_alias=True, mode="json", exclude_none=True) for c in result.content]
    scope = storage.tokens.scope if storage.tokens else ""
    return content, scope or ""


def main() -> None:
    if len(sys.argv) != 5 or sys.argv[2] != "call":
        print("usage: py_oauth_client.py <url> call <tool> <json-args>", file=sys.stderr)
        sys.exit(64)
    try:
        content, scope = asyncio.run(run(sys.argv[1], sys.argv[3], json.loads(sys.argv[4])))
    except BaseException as e:  # noqa: BLE001 - one ERROR line
        while isinstance(e, BaseExceptionGroup) and len(e.exceptions) == 1:
            e = e.exceptions[0]
        print("ERROR " + " ".join((str(e) or type(e).__name__).split()), flush=True)
        sys.exit(2)
    print("RESULT " + json.dumps(content, separators=(",", ":")), flush=True)
    print("SCOPE " + scope, flush=True)


if __name__ == "__main__":
    main()
