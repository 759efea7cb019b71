-- How a login token was obtained ('password' or 'sso'): a user who logs in through single sign-on
-- is not held to a forced password change, since the password is not how they log in.
ALTER TABLE auth_tokens ADD COLUMN method TEXT NOT NULL DEFAULT 'password';
