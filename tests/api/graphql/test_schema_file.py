"""The GraphQL schema (SDL) checked into docs/ is the schema the code serves, and that
schema is the contract's."""

from __future__ import annotations

from pathlib import Path

import pytest
from graphql import GraphQLInputObjectType, GraphQLObjectType, GraphQLSchema, print_ast
from graphql import build_schema as parse_sdl
from typer.testing import CliRunner

from accounts.cli import app as cli
from accounts.http.graphql.schema import build_schema

SCHEMA_FILE = Path(__file__).resolve().parents[3] / "docs" / "schema.graphql"
REGENERATE = "run `.venv/bin/accounts graphql-schema > docs/schema.graphql` and commit it"

# The contract's types, as "field(arguments): type" (API.md, section GraphQL).
CONTRACT: dict[str, dict[str, str]] = {
    "User": {
        "id": "ID!",
        "email": "String!",
        "name": "String!",
        "isActive": "Boolean!",
        "isSuperuser": "Boolean!",
        "emailVerified": "Boolean!",
        "createdAt": "DateTime!",
        "updatedAt": "DateTime!",
    },
    "UserEdge": {"cursor": "String!", "node": "User!"},
    "PageInfo": {"hasNextPage": "Boolean!", "endCursor": "String"},
    "UserConnection": {"edges": "[UserEdge!]!", "pageInfo": "PageInfo!", "totalCount": "Int!"},
    "TokenPair": {
        "accessToken": "String!",
        "tokenType": "String!",
        "expiresIn": "Int!",
        "refreshToken": "String!",
    },
    "Query": {
        "me": "User!",
        "user(id: ID!)": "User",
        "users(first: Int = 20, after: String, query: String, isActive: Boolean)": (
            "UserConnection!"
        ),
    },
    "Mutation": {
        "register(email: String!, password: String!, name: String!)": "User!",
        "login(email: String!, password: String!)": "TokenPair!",
        "refresh(refreshToken: String!)": "TokenPair!",
        "logout(refreshToken: String!)": "Boolean!",
        "updateUser(id: ID!, input: UpdateUserInput!)": "User!",
        "deleteUser(id: ID!)": "Boolean!",
        "changePassword(currentPassword: String!, newPassword: String!)": "Boolean!",
    },
}


def signatures(schema: GraphQLSchema, type_name: str) -> dict[str, str]:
    """A type's fields as "name(arg: Type = default, ...)" -> return type."""
    graphql_type = schema.type_map[type_name]
    assert isinstance(graphql_type, GraphQLObjectType), type_name
    result: dict[str, str] = {}
    for name, field in graphql_type.fields.items():
        arguments = []
        for arg in field.args.values():
            assert arg.ast_node is not None
            # "= null" on a nullable argument says what leaving it out already means.
            arguments.append(print_ast(arg.ast_node).removesuffix(" = null"))
        key = f"{name}({', '.join(arguments)})" if arguments else name
        result[key] = str(field.type)
    return result


def test_the_checked_in_sdl_is_the_served_schema() -> None:
    checked_in = SCHEMA_FILE.read_text(encoding="utf-8")

    # `accounts graphql-schema` prints the SDL with typer.echo: one trailing newline.
    assert checked_in == build_schema().as_str() + "\n", (
        f"{SCHEMA_FILE} is out of date with the schema the code serves: {REGENERATE}"
    )


def test_the_regenerate_command_prints_the_checked_in_sdl() -> None:
    result = CliRunner().invoke(cli, ["graphql-schema"])

    assert result.exit_code == 0, result.output
    assert result.stdout == SCHEMA_FILE.read_text(encoding="utf-8"), REGENERATE


@pytest.mark.parametrize("type_name", sorted(CONTRACT))
def test_the_sdl_has_the_contracts_fields(type_name: str) -> None:
    schema = parse_sdl(SCHEMA_FILE.read_text(encoding="utf-8"))
    fields = signatures(schema, type_name)

    # Every field the contract names, exactly; later additions (lifecycle) may follow.
    assert {name: fields.get(name) for name in CONTRACT[type_name]} == CONTRACT[type_name]


def test_the_sdl_has_the_update_input() -> None:
    schema = parse_sdl(SCHEMA_FILE.read_text(encoding="utf-8"))
    update = schema.type_map["UpdateUserInput"]

    assert isinstance(update, GraphQLInputObjectType)
    fields = {name: str(field.type) for name, field in update.fields.items()}
    assert fields == {
        "name": "String",
        "email": "String",
        "isActive": "Boolean",
        "isSuperuser": "Boolean",
    }
