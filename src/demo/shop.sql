-- The demo's shop database. orders.customer_id points at customers in the
-- CRM database: a relation across sources, declared by the demo.
CREATE TABLE products (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    sku         TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    unit_price  DECIMAL(10, 2) NOT NULL CHECK (unit_price >= 0)
);

CREATE TABLE orders (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    customer_id INTEGER NOT NULL,
    ordered_at  DATETIME NOT NULL,
    status      TEXT NOT NULL DEFAULT 'open'
);

CREATE TABLE order_items (
    order_id    INTEGER NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    product_id  INTEGER NOT NULL REFERENCES products (id),
    quantity    INTEGER NOT NULL CHECK (quantity > 0),
    unit_price  DECIMAL(10, 2) NOT NULL,
    PRIMARY KEY (order_id, product_id)
);

CREATE INDEX orders_customer ON orders (customer_id);

CREATE VIEW order_totals AS
    SELECT o.id AS order_id, o.customer_id, o.ordered_at,
           SUM(i.quantity * i.unit_price) AS total
    FROM orders o JOIN order_items i ON i.order_id = o.id
    GROUP BY o.id, o.customer_id, o.ordered_at;

INSERT INTO products (sku, name, unit_price) VALUES
    ('HAM-01', 'Claw hammer', 19.90),
    ('DRL-18', 'Cordless drill 18V', 129.00),
    ('SAW-07', 'Hand saw', 24.50),
    ('GLV-XL', 'Work gloves XL', 7.95);

INSERT INTO orders (customer_id, ordered_at, status) VALUES
    (1, '2025-06-01 10:00:00', 'shipped'),
    (1, '2025-06-15 14:30:00', 'open'),
    (2, '2025-06-03 09:12:00', 'shipped'),
    (3, '2025-06-20 16:45:00', 'cancelled'),
    (5, '2025-07-01 11:00:00', 'open');

INSERT INTO order_items (order_id, product_id, quantity, unit_price) VALUES
    (1, 1, 2, 19.90),
    (1, 4, 10, 7.95),
    (2, 2, 1, 129.00),
    (3, 2, 12, 119.00),
    (3, 3, 12, 24.50),
    (4, 1, 1, 19.90),
    (5, 4, 40, 7.50);
