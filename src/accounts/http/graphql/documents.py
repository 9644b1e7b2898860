"""Rules on a GraphQL document as a whole, checked before anything in it runs.

``OperationChoice``: a document of several operations must say which one to run
(GraphQL spec, GetOperation: otherwise "a request error"). Strawberry runs the first
one instead, so ``query A {...} mutation B {...}`` with no ``operationName`` ran A.
The request is refused as an unknown ``operationName`` is: a 400 problem, since
neither names an operation to run.
"""

from __future__ import annotations

from collections.abc import Iterator

from graphql.language import OperationDefinitionNode
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
