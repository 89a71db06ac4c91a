-- Single-use tokens (sign-in links, stream tickets, signed-out sessions), each kept until
-- it could no longer be used anyway. In the database so that every replica sees them.

CREATE TABLE spent_tokens (
    key TEXT PRIMARY KEY,
    until REAL NOT NULL
);

CREATE INDEX spent_tokens_until ON spent_tokens (until);
