"""The GraphQL face: schema, resolvers, context and the HTTP/websocket router."""
