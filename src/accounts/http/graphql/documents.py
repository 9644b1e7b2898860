"""Rules on a GraphQL document as a whole, checked before anything in it runs.

``depth_rule``: how deep an operation may reach, with introspection held to a limit
of its own (see schema.py for both limits).

``OperationChoice``: a document of several operations must say which one to run
(GraphQL spec, GetOperation: otherwise "a request error"). Strawberry runs the first
one instead, so ``query A {...} mutation B {...}`` with no ``operationName`` ran A.
The request is refused as an unknown ``operationName`` is: a 400 problem, since
neither names an operation to run.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from graphql import GraphQLError, ValidationContext, ValidationRule
from graphql.language import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    Node,
    OperationDefinitionNode,
)
from strawberry.extensions import SchemaExtension
from strawberry.schema.exceptions import CannotGetOperationTypeError


class OperationNameRequired(CannotGetOperationTypeError):
    """Raised as Strawberry raises an unknown operation name, so that its view answers
    both alike (a 400, rendered as a problem by the router)."""

    def __init__(self) -> None:
        super().__init__(None)

    def as_http_error_reason(self) -> str:
        # graphql-core's words for it, had Strawberry let it get that far.
        return "Must provide operation name if query contains multiple operations."


class OperationChoice(SchemaExtension):
    """Refuses a document of several operations sent with no ``operationName``."""

    def on_operation(self) -> Iterator[None]:
        # Read before the document is parsed, ``operation_name`` is what the client
        # sent; once it is parsed, Strawberry answers the first operation's name.
        self._named = self.execution_context.operation_name is not None
        yield

    def on_parse(self) -> Iterator[None]:
        yield
        document = self.execution_context.graphql_document
        if self._named or document is None:
            return
        operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        if len(operations) > 1:
            raise OperationNameRequired()


@dataclass
class _Reach:
    """How deep one definition (an operation or a fragment) reaches, by one count: its
    deepest field's number of enclosing fields (-1: no field), and the fragments it
    spreads, each with the number of fields enclosing the spread."""

    deepest: int = -1
    spreads: list[tuple[str, int]] = field(default_factory=list)


@dataclass
class _Definition:
    node: OperationDefinitionNode | FragmentDefinitionNode
    # Every field counted, introspection included / as Strawberry's QueryDepthLimiter
    # counts: an introspection field (``__schema``, ``__type``) counts, what it selects
    # does not.
    full: _Reach = field(default_factory=_Reach)
    plain: _Reach = field(default_factory=_Reach)


def _fragment_depths(reaches: dict[str, _Reach]) -> dict[str, int]:
    """How deep each fragment reaches, through the fragments it spreads, worked out
    without recursion: a document may chain hundreds of fragments. A spread within
    itself (a cycle, which graphql-core's own rule refuses) adds nothing."""
    known: dict[str, int] = {}
    started: set[str] = set()
    pending: list[tuple[str, bool]] = [(name, False) for name in reaches]
    while pending:
        name, spreads_known = pending.pop()
        if name in known or name not in reaches:
            continue
        reach = reaches[name]
        if spreads_known:
            known[name] = _through(reach, known)
        elif name not in started:
            started.add(name)
            pending.append((name, True))
            pending.extend((spread, False) for spread, _ in reach.spreads)
    return known


def _through(reach: _Reach, fragments: dict[str, int]) -> int:
    """How deep a definition reaches, given how deep the fragments it spreads do."""
    return max(
        [reach.deepest] + [at + fragments[name] for name, at in reach.spreads if name in fragments]
    )


def _is_introspection(node: Node) -> bool:
    return isinstance(node, FieldNode) and node.name.value.startswith("__")


def depth_rule(max_depth: int, max_introspection_depth: int) -> type[ValidationRule]:
    """A validation rule refusing an operation deeper than ``max_depth``, counted as
    Strawberry's QueryDepthLimiter counts (``{ me { id } }`` is 1; introspection's
    selections are not counted), or deeper than ``max_introspection_depth`` with
    every field counted. It replaces QueryDepthLimiter's rule, which raised
    ``KeyError`` on a spread of an unknown fragment instead of leaving it to
    graphql-core's own rule."""

    class DepthRule(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            self.operations: list[_Definition] = []
            self.fragments: dict[str, _Definition] = {}
            self.current: _Definition | None = None

        def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> None:
            self.current = _Definition(node)
            self.operations.append(self.current)

        def enter_fragment_definition(self, node: FragmentDefinitionNode, *_: Any) -> None:
            self.current = _Definition(node)
            self.fragments.setdefault(node.name.value, self.current)

        def enter_field(self, _node: FieldNode, *args: Any) -> None:
            self._reached(args[-1], None)

        def enter_fragment_spread(self, node: FragmentSpreadNode, *args: Any) -> None:
            self._reached(args[-1], node.name.value)

        def _reached(self, ancestors: list[Any], spread: str | None) -> None:
            """A field (``spread`` None) or a spread of fragment ``spread``, under
            ``ancestors`` (graphql-core's visitor: nodes and lists, root first)."""
            if self.current is None:
                return
            fields = [node for node in ancestors if isinstance(node, FieldNode)]
            reaches = [self.current.full]
            if not any(_is_introspection(node) for node in fields):
                reaches.append(self.current.plain)
            for reach in reaches:
                if spread is None:
                    reach.deepest = max(reach.deepest, len(fields))
                else:
                    reach.spreads.append((spread, len(fields)))

        def leave_document(self, *_: Any) -> None:
            plain = _fragment_depths({n: d.plain for n, d in self.fragments.items()})
            full = _fragment_depths({n: d.full for n, d in self.fragments.items()})
            for operation in self.operations:
                node = operation.node
                name = node.name.value if node.name else "anonymous"
                if _through(operation.plain, plain) > max_depth:
                    message = f"'{name}' exceeds maximum operation depth of {max_depth}"
                elif _through(operation.full, full) > max_introspection_depth:
                    message = (
                        f"'{name}' exceeds maximum introspection depth of {max_introspection_depth}"
                    )
                else:
                    continue
                self.report_error(GraphQLError(message, node))

    return DepthRule
