"""The PostgreSQL historian's two connections (writer and reader), transactions and reconnects.

Part of :class:`~axline.historian.postgres.PostgresHistorian`: the writer runs appends, events and
DDL in one transaction each and commits before returning; the reader runs queries in autocommit. A
lost connection raises :class:`ConnectionError` (nothing acknowledged) and the next call reconnects.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import psycopg
from psycopg import sql

from axline.historian.pg_copy import register_array_dumpers

_T = TypeVar("_T")


class PgConnections:
    """Connections, transactions and SQL quoting (a part of ``PostgresHistorian``; uses its state)."""

    def _connect(self, autocommit: bool) -> psycopg.Connection:
        """A new connection; an unreachable server raises ConnectionError saying what to check."""
        try:
            conn = psycopg.connect(
                self.dsn,
                autocommit=autocommit,
                connect_timeout=max(1, round(self.connect_timeout_s)),
                application_name="axline-historian",
            )
            register_array_dumpers(conn)
            return conn
        except psycopg.OperationalError as e:
            raise ConnectionError(
                f"historian PostgreSQL {self._where}: cannot connect ({str(e).strip()}); check that the server "
                "runs and that the 'historian' DSN in the plant file is right"
            ) from e

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"historian PostgreSQL {self._where} is closed; open it again to use it")

    def _writer(self) -> psycopg.Connection:
        self._check_open()
        if self._wconn is None or self._wconn.closed:
            self._wconn = self._connect(autocommit=False)
        return self._wconn

    def _reader(self) -> psycopg.Connection:
        self._check_open()
        if self._rconn is None or self._rconn.closed:
            self._rconn = self._connect(autocommit=True)
        return self._rconn

    def _drop_writer(self) -> None:
        if self._wconn is not None:
            try:
                self._wconn.close()
            except Exception:  # pragma: no cover - closing a broken connection
                pass
        self._wconn = None

    def _drop_reader(self) -> None:
        if self._rconn is not None:
            try:
                self._rconn.close()
            except Exception:  # pragma: no cover
                pass
        self._rconn = None

    def _write(self, what: str, fn: Callable[[psycopg.Connection], _T]) -> _T:
        """Run ``fn`` in one transaction of the writer connection and commit; a lost connection
        raises ConnectionError (nothing acknowledged) and the next call reconnects."""
        with self._wlock:
            conn = self._writer()
            try:
                out = fn(conn)
                conn.commit()
                return out
            except (psycopg.OperationalError, psycopg.InterfaceError) as e:
                if conn.broken or conn.closed:
                    self._drop_writer()
                    raise ConnectionError(
                        f"historian PostgreSQL {self._where}: connection lost during {what} ({str(e).strip()}); "
                        "it was not acknowledged - keep it and retry (the next call reconnects)"
                    ) from e
                self._rollback(conn)
                raise
            except BaseException:
                self._rollback(conn)
                raise

    def _rollback(self, conn: psycopg.Connection) -> None:
        try:
            conn.rollback()
        except psycopg.Error:  # pragma: no cover - the connection broke meanwhile
            self._drop_writer()

    def _read(self, fn: Callable[[psycopg.Cursor], _T]) -> _T:
        """Run a read on the reader connection; a lost connection is retried once on a new one."""
        with self._rlock:
            for attempt in (0, 1):
                conn = self._reader()
                try:
                    with conn.cursor() as cur:
                        return fn(cur)
                except (psycopg.OperationalError, psycopg.InterfaceError) as e:
                    if not (conn.broken or conn.closed):
                        raise
                    self._drop_reader()
                    if attempt:
                        raise ConnectionError(
                            f"historian PostgreSQL {self._where}: connection lost during a query "
                            f"({str(e).strip()}); check that the server runs"
                        ) from e
            raise AssertionError("unreachable")  # pragma: no cover

    # -- schema ---------------------------------------------------------------------------------
    def _q(self, text: str, **parts: sql.Composable) -> sql.Composed:
        """SQL text with ``{s}`` standing for the quoted schema name and ``{name}`` for ``parts``."""
        return sql.SQL(text).format(s=sql.Identifier(self.schema), **parts)

