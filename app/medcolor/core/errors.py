"""The two kinds of failure the CLI reports as one line (`error: ...`) with a distinct exit code."""


class MedcolorError(Exception):
    """Something the user can fix; the message says what is wrong and how to fix it."""

    exit_code = 2


class UsageError(MedcolorError):
    """Bad input: a recipe, an override, a path, a data table (exit code 2)."""

    exit_code = 2


class RunError(MedcolorError):
    """A failure while running (exit code 1): NaN loss, a disk that filled up, a broken checkpoint."""

    exit_code = 1


class Interrupted(MedcolorError):
    """Ctrl-C (SIGINT, exit 130) or SIGTERM (kill, timeout, job schedulers; exit 143) while a run was going; the
    message says whether its folder was kept to resume or removed."""

    def __init__(self, message: str, exit_code: int = 130):
        super().__init__(message)
        self.exit_code = exit_code


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread by the command line's handler so runs stop the way Ctrl-C stops them."""


def stop_signal(e: KeyboardInterrupt) -> tuple[str, int]:
    """('SIGTERM', 143) or ('Ctrl-C', 130): how an interruption is named and the exit code it ends with."""
    return ("SIGTERM", 143) if isinstance(e, Terminated) else ("Ctrl-C", 130)


def closest(word: str, choices, n: int = 3) -> str:
    """' (did you mean X?)' for the closest valid names, or '' when nothing is close."""
    import difflib

    hits = difflib.get_close_matches(word, list(choices), n=n, cutoff=0.5)
    return f" (did you mean {', '.join(hits)}?)" if hits else ""


def all_problems(found: list[str], shown: int = 5) -> UsageError:
    """One UsageError for every problem found at once: the first `shown` of them and how many more."""
    more = f"; and {len(found) - shown} more ({len(found)} problems in all)" if len(found) > shown else ""
    return UsageError("; ".join(found[:shown]) + more)
