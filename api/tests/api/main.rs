//! Integration tests: the real application on a real port, against SQLite and
//! PostgreSQL, the embedded queue and RabbitMQ, and a filesystem blob store.
//! PostgreSQL and RabbitMQ must be running (TEST_DATABASE_URL, TEST_AMQP_URL); a
//! missing service fails the tests.

mod access;
mod auth;
mod batches;
mod classes;
mod clean_answers;
mod consent;
mod corrections;
mod e2e;
mod erasure;
mod face_cap;
mod health;
mod helpers;
mod idempotency;
mod job_events;
mod keys;
mod limits;
mod outbox;
mod provenance;
mod reports;
mod retention;
mod sessions;
mod student_data;
mod student_photos;
mod students;
mod uploads;
mod web_ui;
mod webhooks;
