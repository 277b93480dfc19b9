"""The roles, schemas and credentials of each app (pure SQL over one admin connection).

Per app `<pkg>` (e.g. `events_api`):

- `<pkg>`: NOLOGIN, owns schema `<pkg>` and everything the app's migrations create there;
- `<pkg>_a`, `<pkg>_b`: LOGIN, members of `<pkg>`, with `role` and `search_path` set to it, so a
  session acts as the owner and finds its tables without qualifying them. Two login roles
  alternate across rotations (AWS's "alternating users" strategy): a rotation sets a new password
  on the role NOT in use, then points the app's secret at it. Connections still opened with the
  previous credentials keep working until the next rotation, so a rotation fails no login.

No app role is a member of another app's role or of the admin; the database's PUBLIC privileges
are revoked, so connecting needs membership of an app role (or the admin).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass

import psycopg
from psycopg import sql

LOGIN_SUFFIXES = ("_a", "_b")
PASSWORD_BYTES = 32


def new_password() -> str:
    """A random password (URL-safe: no quoting issues anywhere it travels)."""
    return secrets.token_urlsafe(PASSWORD_BYTES)


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str


def login_roles(owner: str) -> tuple[str, str]:
    a, b = (f"{owner}{suffix}" for suffix in LOGIN_SUFFIXES)
    return a, b


def other_login(owner: str, current: str) -> str:
    a, b = login_roles(owner)
    if current not in (a, b):
        raise ValueError(f"{current!r} is not a login role of {owner!r}; allowed: {a}, {b}")
    return b if current == a else a


def _role_exists(conn: psycopg.Connection, role: str) -> bool:
    row = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
    return row is not None


def ensure_roles(conn: psycopg.Connection, owner: str, database: str) -> None:
    """Create (or repair) the owner role, its schema and the two login roles. Idempotent."""
    ident = sql.Identifier
    if not _role_exists(conn, owner):
        conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(ident(owner)))
    # The admin (RDS's master user: CREATEROLE, not a superuser) must be able to act as the
    # owner to give it a schema; since PostgreSQL 16 creating a role grants only ADMIN on it.
    conn.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(ident(owner)))
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {0} AUTHORIZATION {0}").format(ident(owner)))
    conn.execute(sql.SQL("ALTER SCHEMA {0} OWNER TO {0}").format(ident(owner)))
    conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(ident(database)))
    conn.execute(
        sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(
            ident(database), ident(owner)
        )
    )
    for login in login_roles(owner):
        if not _role_exists(conn, login):
            # No password yet: the role cannot log in until a credential is set for it.
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(ident(login)))
        conn.execute(sql.SQL("GRANT {} TO {}").format(ident(owner), ident(login)))
        # Every session of the login role acts as the owner (objects it creates belong to the
        # owner, whichever login made them) and resolves names in the app's schema.
        conn.execute(
            sql.SQL("ALTER ROLE {} SET role = {}").format(ident(login), sql.Literal(owner))
        )
        conn.execute(
            sql.SQL("ALTER ROLE {} SET search_path = {}").format(ident(login), ident(owner))
        )


def set_password(conn: psycopg.Connection, role: str, password: str) -> None:
    # ALTER ROLE takes no bind parameters; the literal is quoted by psycopg, never logged.
    conn.execute(
        sql.SQL("ALTER ROLE {} WITH LOGIN PASSWORD {}").format(
            sql.Identifier(role), sql.Literal(password)
        )
    )


def provision(
    conn: psycopg.Connection,
    owner: str,
    database: str,
    current: Credentials | None,
    publish: Callable[[Credentials], None],
) -> Credentials:
    """Roles for `owner`, and its credentials: the stored ones re-applied (a restored database
    gets them back), or the first ones created and published."""
    ensure_roles(conn, owner, database)
    if current is not None:
        set_password(conn, current.username, current.password)
        return current
    first = Credentials(login_roles(owner)[0], new_password())
    set_password(conn, first.username, first.password)
    publish(first)
    return first


def rotate(
    conn: psycopg.Connection,
    owner: str,
    current: Credentials,
    publish: Callable[[Credentials], None],
) -> Credentials:
    """A new password on the login role not in use, then publish it (the order matters: the
    published credentials work before anyone reads them)."""
    nxt = Credentials(other_login(owner, current.username), new_password())
    set_password(conn, nxt.username, nxt.password)
    publish(nxt)
    return nxt
