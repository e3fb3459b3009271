"""The web console at /console: server-rendered pages (Jinja2) over the same services and audit log as the API.

    routes.py     the routes, thin: read the session, check CSRF and the key's rights, call one page function, render
    session.py    sign-in sessions: a signed, HttpOnly, SameSite=Lax cookie holding the key id and the CSRF token
    pages.py      what each page shows, read from the services (no HTTP here)
    playground.py text deltas of one generation, streamed from the same worker path the APIs use
    templates/    Jinja2, autoescaped: every name and model output is text
    static/       our own CSS and JavaScript (no third-party code, nothing fetched at run time)

The console knows the services only through the `Services` the server built (`app.state.services`); it imports no
module of `api/` (which mounts it), so the package graph keeps no cycle.
"""
