-- Real-API fidelity (issue 26): the scopes the provider granted when the integration was
-- connected (a Google consent lets the user untick some), from the token answer's `scope`, as
-- a JSON array. NULL when the credentials were given without a scope: nothing is checked then.
ALTER TABLE integrations ADD COLUMN granted_scopes TEXT;
