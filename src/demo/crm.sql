-- The demo's CRM database: customers and the people we talk to there.
CREATE TABLE segments (
    code        TEXT PRIMARY KEY,
    description TEXT NOT NULL
);

CREATE TABLE customers (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL,
    email       TEXT NOT NULL UNIQUE,
    country     TEXT NOT NULL,
    segment     TEXT REFERENCES segments (code),
    credit_limit DECIMAL(12, 2),
    created_at  DATETIME NOT NULL
);

CREATE TABLE contacts (
    customer_id INTEGER NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    position    INTEGER NOT NULL,
    full_name   TEXT NOT NULL,
    phone       TEXT,
    PRIMARY KEY (customer_id, position)
);

CREATE INDEX customers_country ON customers (country);

INSERT INTO segments (code, description) VALUES
    ('smb', 'Small and medium business'),
    ('ent', 'Enterprise'),
    ('pub', 'Public sector');

INSERT INTO customers (name, email, country, segment, credit_limit, created_at) VALUES
    ('Acme Tools', 'orders@acme.example', 'DE', 'smb', 5000.00, '2025-01-14 09:30:00'),
    ('Borealis Energy', 'buying@borealis.example', 'NO', 'ent', 250000.00, '2025-02-03 13:05:00'),
    ('Città di Parma', 'acquisti@parma.example', 'IT', 'pub', 80000.00, '2025-03-21 08:00:00'),
    ('Dune Analytics', 'hello@dune.example', 'FR', 'smb', 12000.50, '2025-04-02 17:45:00'),
    ('Evergreen Foods', 'procure@evergreen.example', 'US', 'ent', 150000.00, '2025-05-11 10:15:00');

INSERT INTO contacts (customer_id, position, full_name, phone) VALUES
    (1, 1, 'Anna Schmidt', '+49 30 1234567'),
    (1, 2, 'Jonas Weber', NULL),
    (2, 1, 'Ingrid Larsen', '+47 22 334455'),
    (3, 1, 'Giulia Rossi', '+39 0521 123456'),
    (5, 1, 'Sam Carter', '+1 555 0100');
