"""The GraphQL API at /graphql: one Strawberry schema over the same services as REST."""
