"""Plain ``locust -f <the locustfile>``: what :mod:`.engine` does around a run, done from Locust's events.

On the master (or the single process): with no ``--dsql-target-hostname``, start `emulate dsql` in a child
process and put its cluster and throwaway identity into the parsed options (the master forwards them to its
workers); when a test starts, tag it with a new run id, take the user count from Locust's (``-u`` or the web
UI), and create the table; stop the test once every user has run its iterations (or ``--dsql-duration`` has
passed); when it stops, count the rows back and log the summary table (exit code 1 when it failed).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from sigv4_proxy.loadtest.settings import OPTION_PREFIX

if TYPE_CHECKING:  # pragma: no cover
    from locust.env import Environment

    from sigv4_proxy.loadtest.locustfile import LoadState

_log = logging.getLogger("sigv4_proxy.loadtest")


class Standalone:
    """The master's (or the single process's) side of a plain `locust -f` run: see the module docstring."""

    def __init__(self, environment: Environment, state: LoadState) -> None:
        self.environment, self.state = environment, state
        self._emulator = contextlib.ExitStack()
        self._target = "the target of --dsql-target-hostname"  # described once a test starts
        self._started: float | None = None
        self._started_at = ""
        self._deadline: threading.Timer | None = None
        self._emulated: dict[str, Any] = {}  # the emulator's options (a test started with no target uses them)

    def start(self) -> None:
        options = self.environment.parsed_options
        assert options is not None
        if not getattr(options, OPTION_PREFIX + "target_hostname", None):
            self._start_emulator(options)
        events = self.environment.events
        events.test_start.add_listener(self._on_test_start)
        events.test_stop.add_listener(self._on_test_stop)
        events.quitting.add_listener(self._on_quitting)
        self.state.on_finished.append(self._on_finished)

    def _start_emulator(self, options: Any) -> None:
        from sigv4_proxy.loadtest.emulated import start_emulator

        info = self._emulator.enter_context(start_emulator())
        self._emulated = {
            "emulate": False,
            "emulator_identity": info.identity,
            "target_hostname": info.host,
            "target_hostaddr": info.listen_host,
            "target_port": info.port,
            "target_region": info.region,
            "target_sslrootcert": info.ca_file,
            "target_sslmode": "verify-full",
            "target_mint_tokens": True,
        }
        self._apply_emulator(options)
        self._target = f"emulate dsql ({info.host})"
        _log.info("loadtest: emulate dsql started for %s on %s:%s", info.host, info.listen_host, info.port)

    def _apply_emulator(self, options: Any) -> None:
        for name, value in self._emulated.items():
            setattr(options, OPTION_PREFIX + name, value)

    def _on_test_start(self, **_: Any) -> None:
        """Before the master sends the spawn messages (they carry these options to the workers)."""
        from sigv4_proxy.loadtest.engine import prepare_database
        from sigv4_proxy.loadtest.schema import new_run_id

        options = self.environment.parsed_options
        assert options is not None
        if self._emulated and not getattr(options, OPTION_PREFIX + "target_hostname", None):
            # Locust's web UI sends the form's fields back, the target's empty: the emulator is the target.
            self._apply_emulator(options)
        setattr(options, OPTION_PREFIX + "run_id", new_run_id())
        if getattr(options, "num_users", None):
            setattr(options, OPTION_PREFIX + "users", int(options.num_users))
        self.state.begin()  # again, now with this test's run id and user count
        target = self.state.settings.target
        if target is not None and target.hostname != self._emulated.get("target_hostname"):
            self._target = target.describe()
        self._started, self._started_at = time.monotonic(), datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        duration = self.state.settings.duration
        if duration is not None:
            self._deadline = threading.Timer(duration, self.state.request_stop)  # a greenlet (patched)
            self._deadline.start()
        if self.state.settings.target is None:
            return  # the options are wrong: logged, and every user fails with that text
        setup = prepare_database(self.state.settings, self.state.credentials)
        if setup is not None:
            _log.error("loadtest: could not create the table: %s", setup.failure.text())

    def _on_finished(self) -> None:
        runner = self.environment.runner
        options = self.environment.parsed_options
        if runner is None:
            return
        # Not from the user's greenlet that ended last (stopping the runner stops and waits for the users): a
        # thread of its own, which locust's patch makes a greenlet.
        stop = runner.quit if options is not None and options.headless else runner.stop
        threading.Thread(target=stop, name="dsql-loadtest-stop", daemon=True).start()

    def _on_test_stop(self, **_: Any) -> None:
        from sigv4_proxy.loadtest.engine import RunFacts, collect_result, count_rows
        from sigv4_proxy.loadtest.summary import render_summary

        if self._started is None:
            return
        if self._deadline is not None:
            self._deadline.cancel()
        settings = self.state.settings
        if settings.target is None:
            rows_counted, count_problem = None, self.state.problem
        else:
            rows_counted, count_problem = count_rows(settings, self.state.credentials)
        runner = self.environment.runner
        facts = RunFacts(
            target=self._target,
            started_at=self._started_at,
            duration_s=time.monotonic() - self._started,
            workers=int(getattr(runner, "worker_count", 0)) if runner is not None and self._is_master() else 0,
            rows_counted=rows_counted,
            count_problem=count_problem,
        )
        result = collect_result(self.environment, self.state, settings, facts)
        _log.info("loadtest summary:\n%s", render_summary(result))
        if not result.ok:
            self.environment.process_exit_code = 1
        self._started = None

    def _is_master(self) -> bool:
        import locust.runners

        return isinstance(self.environment.runner, locust.runners.MasterRunner)

    def _on_quitting(self, **_: Any) -> None:
        self._emulator.close()
