#!/usr/bin/env python3
"""Scripted browser for aws-tip login tests: set it as BROWSER.

Usage: browser.py URL

URL is the authorization URL of the test OpenID provider (tests/standins/op),
or a loopback URL of the program under test that redirects to it. The script
follows redirects itself, signs in through oidc-provider's development
interactions (any login and password), accepts the consent prompt if one is
shown, and finally requests the loopback redirect URI with the code and state,
as a real browser would.

Environment:
  BROWSER_LOGIN  login name to sign in with (default: alice)
  BROWSER_MODE   normal (default); deny: cancel at the login page, so the
                 provider redirects back with error=access_denied;
                 wrong-state: replace the state parameter in the final
                 redirect; none: send no request and exit 0
  BROWSER_LOG    append progress lines to this file (default: stderr)

stdout stays empty. Progress lines never contain codes, tokens or any query
string. Exit status: 0 when the final redirect reached the loopback listener
(whatever HTTP status it answered with), 1 on any failure, with a one-line
message on stderr. Only loopback hosts are contacted.
"""

import html.parser
import http.cookiejar
import ipaddress
import logging
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

log = logging.getLogger("browser")

MAX_REDIRECTS = 20
REQUEST_TIMEOUT_SECONDS = 10
MODES = ("normal", "deny", "wrong-state", "none")
WRONG_STATE = "state-replaced-by-test-browser"


class BrowserError(Exception):
    """A step of the scripted login failed."""


class NoRedirect(urllib.request.HTTPRedirectHandler):
    """Return 3xx responses unchanged so redirects are followed one at a time."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


class FormParser(html.parser.HTMLParser):
    """Collect the forms, their inputs and the links of an interaction page."""

    def __init__(self):
        super().__init__()
        self.forms = []
        self.links = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "form":
            self.forms.append({
                "action": attributes.get("action", ""),
                "method": attributes.get("method", "get").lower(),
                "inputs": {},
            })
        elif tag == "input" and self.forms:
            name = attributes.get("name")
            if name:
                self.forms[-1]["inputs"][name] = attributes.get("value", "")
        elif tag == "a" and attributes.get("href"):
            self.links.append(attributes["href"])


def without_query(url):
    """Return the URL without query and fragment, because they carry codes, state and PKCE values."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def require_loopback(url):
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http":
        raise BrowserError(f"not opening {without_query(url)}: only http URLs on loopback hosts are allowed")
    host = parts.hostname or ""
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise BrowserError(f"not opening {without_query(url)}: host {host!r} is not a loopback address")


def redirect_target(url):
    """Return the scheme, authority and path, which identify a redirect URI."""
    parts = urllib.parse.urlsplit(url)
    return (parts.scheme, parts.netloc.lower(), parts.path)


class Browser:
    def __init__(self, login, mode):
        self.login = login
        self.mode = mode
        # ProxyHandler({}) ignores HTTP_PROXY: tests set it for the AWS SDK,
        # and the provider and the loopback listener must be reached directly.
        self.opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}),
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()),
            NoRedirect(),
        )
        self.redirect_uri = None

    def request(self, url, form=None):
        require_loopback(url)
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        method = "POST" if data is not None else "GET"
        log.info("%s %s", method, without_query(url))
        request = urllib.request.Request(url, data=data, method=method)
        try:
            response = self.opener.open(request, timeout=REQUEST_TIMEOUT_SECONDS)
        except urllib.error.HTTPError as error:
            # HTTPError carries the 3xx, 4xx and 5xx responses. The caller handles them all.
            response = error
        except (urllib.error.URLError, OSError) as error:
            raise BrowserError(f"request to {without_query(url)} failed: {error}") from error
        with response:
            body = response.read().decode("utf-8", errors="replace")
            return response.status, response.headers, body

    def remember_redirect_uri(self, url):
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
        if "redirect_uri" in query and self.redirect_uri is None:
            self.redirect_uri = query["redirect_uri"][0]

    def is_final_redirect(self, url):
        return self.redirect_uri is not None and redirect_target(url) == redirect_target(self.redirect_uri)

    def deliver(self, url):
        """Send the final redirect (code and state, or error) to the listener."""
        if self.mode == "wrong-state":
            parts = urllib.parse.urlsplit(url)
            query = [
                (key, WRONG_STATE if key == "state" else value)
                for key, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
            ]
            url = urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))
            log.info("replaced the state parameter of the final redirect")
        keys = sorted(key for key, _ in urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
        log.info("final redirect carries parameters %s", ", ".join(keys))
        status, _, _ = self.request(url)
        log.info("loopback listener answered HTTP %d", status)

    def interact(self, url, body):
        """Fill in the interaction page and return the URL the form leads to."""
        parser = FormParser()
        parser.feed(body)
        form = next((f for f in parser.forms if f["method"] == "post" and "prompt" in f["inputs"]), None)
        if form is None:
            raise BrowserError(f"no sign-in or consent form found at {without_query(url)}")
        prompt = form["inputs"]["prompt"]

        if self.mode == "deny":
            abort = next((link for link in parser.links if link.rstrip("/").endswith("/abort")), None)
            if abort is None:
                raise BrowserError(f"no cancel link found on the {prompt} page at {without_query(url)}")
            log.info("cancelling at the %s prompt", prompt)
            return urllib.parse.urljoin(url, abort), None

        action = urllib.parse.urljoin(url, form["action"])
        if prompt == "login":
            log.info("signing in as %s", self.login)
            return action, {"prompt": "login", "login": self.login, "password": "any-password"}
        if prompt == "consent":
            log.info("accepting the consent prompt")
            return action, {"prompt": "consent"}
        raise BrowserError(f"unsupported interaction prompt {prompt!r} at {without_query(url)}")

    def run(self, start_url):
        url, form = start_url, None
        for _ in range(MAX_REDIRECTS):
            self.remember_redirect_uri(url)
            if self.is_final_redirect(url):
                self.deliver(url)
                return

            status, headers, body = self.request(url, form)
            form = None
            if status in (301, 302, 303, 307, 308):
                location = headers.get("Location")
                if not location:
                    raise BrowserError(f"HTTP {status} from {without_query(url)} has no Location header")
                url = urllib.parse.urljoin(url, location)
                continue
            if status == 200 and "/interaction/" in urllib.parse.urlsplit(url).path:
                url, form = self.interact(url, body)
                continue
            raise BrowserError(f"unexpected HTTP {status} from {without_query(url)}: {first_line_of_text(body)}")
        raise BrowserError(f"stopped after {MAX_REDIRECTS} requests without reaching the redirect URI")


def first_line_of_text(body):
    """Return a short single-line excerpt of an error page for the failure message."""
    parser = TextParser()
    parser.feed(body)
    text = " ".join(" ".join(parser.text).split())
    return text[:200] or "(empty body)"


class TextParser(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.text = []
        self.skip = False

    def handle_starttag(self, tag, attrs):
        self.skip = tag in ("script", "style", "head")

    def handle_endtag(self, tag):
        self.skip = False

    def handle_data(self, data):
        if not self.skip:
            self.text.append(data)


def main(argv):
    if len(argv) != 2:
        sys.stderr.write("browser: usage: browser.py URL\n")
        return 2

    mode = os.environ.get("BROWSER_MODE", "normal") or "normal"
    if mode not in MODES:
        sys.stderr.write(f"browser: invalid BROWSER_MODE {mode!r}: expected one of {', '.join(MODES)}\n")
        return 2
    log_path = os.environ.get("BROWSER_LOG")
    if log_path:
        logging.basicConfig(filename=log_path, level=logging.INFO, format="browser: %(message)s")
    else:
        logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="browser: %(message)s")
    if mode == "none":
        log.info("BROWSER_MODE=none: not opening the URL")
        return 0

    browser = Browser(os.environ.get("BROWSER_LOGIN", "alice") or "alice", mode)
    try:
        browser.run(argv[1])
    except BrowserError as error:
        log.error("failed: %s", error)
        if log_path:
            sys.stderr.write(f"browser: {error}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
