from typing import TypedDict

class _Stats(TypedDict):
    installed: bool
    held: int
    reused: int
    passed_through: int

def install() -> None: ...
def stats() -> _Stats: ...
