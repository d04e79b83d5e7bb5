-- When a token was revoked, shown by `tocsin token list`.
ALTER TABLE api_tokens ADD COLUMN revoked_at TEXT;
