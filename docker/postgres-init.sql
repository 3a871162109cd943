-- Runs once when the compose PostgreSQL volume is created: the login role the API connects as.
-- Migrations grant it table access and apply row-level security to it; it owns nothing.
-- Change the password for anything but local use.
CREATE ROLE resonance_app LOGIN PASSWORD 'resonance_app';
