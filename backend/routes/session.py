"""The browser's login: one token typed once, kept as a signed cookie naming a server-side session."""

from __future__ import annotations

import html
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from backend.auth import client_address
from service.access import COOKIE, Access
from service.db.rate_limit import TooManyFailures
from service.db.sessions import SESSION_SECONDS

router = APIRouter(tags=["session"], include_in_schema=False)
MAX_FORM_BYTES = 8192

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>armscope: log in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body {{ font-family: system-ui, sans-serif; background: #f4f6f9; display: flex; min-height: 100vh;
        align-items: center; justify-content: center; margin: 0; }}
 form {{ background: white; padding: 2rem 2.5rem; border-radius: 10px; box-shadow: 0 2px 12px #0002;
        width: 22rem; }}
 h1 {{ font-size: 1.4rem; margin: 0 0 1rem; }} label {{ display: block; margin-bottom: .4rem; }}
 input[type=password] {{ width: 100%; padding: .55rem; font-size: 1rem; box-sizing: border-box;
        border: 1px solid #bbb; border-radius: 6px; }}
 button {{ margin-top: 1rem; width: 100%; padding: .6rem; font-size: 1rem; border: 0; border-radius: 6px;
        background: #2c6bed; color: white; cursor: pointer; }}
 .error {{ color: #b3261e; margin-top: .8rem; }} .hint {{ color: #666; font-size: .85rem; margin-top: 1rem; }}
</style></head>
<body><form id="login-form" method="post" action="/login">
<h1>armscope</h1>
<label for="token">Access token</label>
<input id="token" name="token" type="password" autofocus autocomplete="current-password">
<input type="hidden" name="next" value="{next}">
<button id="login-button" type="submit">Log in</button>
{error}
<div class="hint">The token is ARMSCOPE_API_TOKEN (or ARMSCOPE_READ_TOKEN to look only).</div>
</form></body></html>"""


def safe_next(target: str | None) -> str:
    """Only same-site paths: never redirect a login to another host."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def login_page(next_path: str, error: str = "", status: int = 200) -> HTMLResponse:
    message = f'<div class="error" id="login-error">{html.escape(error)}</div>' if error else ""
    return HTMLResponse(PAGE.format(next=html.escape(next_path, quote=True), error=message), status_code=status)


@router.get("/login")
def show_login(next: str | None = None) -> HTMLResponse:
    return login_page(safe_next(next))


@router.post("/login")
async def log_in(request: Request) -> Response:
    auth: Access = request.app.state.auth
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return login_page("/", "the form is too large", 413)
    form = parse_qs(body.decode(errors="replace"))
    next_path = safe_next((form.get("next") or ["/"])[0])
    if not auth.enabled:
        return RedirectResponse(next_path, status_code=303)
    token = (form.get("token") or [""])[0]
    try:
        role = await run_in_threadpool(auth.limited_role_of_token, token, client_address(request))
    except TooManyFailures as exc:
        refused = login_page(next_path, f"Too many wrong tokens: try again in {exc.retry_after} s.", 429)
        refused.headers["Retry-After"] = str(exc.retry_after)
        return refused
    if role is None:
        return login_page(next_path, "That token is not right.", 401)
    cookie = await run_in_threadpool(auth.session_cookie, role)
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(COOKIE, cookie, max_age=SESSION_SECONDS, httponly=True, samesite="lax",
                        secure=request.url.scheme == "https")
    return response


@router.api_route("/logout", methods=["GET", "POST"])
def log_out(request: Request) -> Response:
    """Ends the session in the database too: a copy of the cookie kept elsewhere stops working."""
    auth: Access = request.app.state.auth
    auth.end_session(request.cookies.get(COOKIE))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE)
    return response
