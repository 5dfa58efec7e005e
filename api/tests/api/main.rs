//! Integration tests: the real application on a real port, against SQLite and
//! PostgreSQL, the embedded queue and RabbitMQ, and a filesystem blob store.
//! PostgreSQL and RabbitMQ must be running (TEST_DATABASE_URL, TEST_AMQP_URL); a
//! missing service fails the tests.

mod access;
mod auth;
mod classes;
mod e2e;
mod health;
mod helpers;
mod keys;
mod outbox;
mod sessions;
mod students;
mod uploads;
mod webhooks;
