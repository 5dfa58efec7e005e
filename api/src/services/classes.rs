//! Classes: create, read, replace, delete, within the caller's [`Scope`].

use chrono::Utc;
use models::{attendance_session, class, student};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder,
};
use uuid::Uuid;

use super::{optional_text, required_text, scope::Scope};
use crate::error::ServiceError;

/// The editable fields of a class (create and replace take the same).
#[derive(Debug, Clone, Default)]
pub struct ClassFields {
    pub name: String,
    pub department: String,
    pub year: Option<i32>,
    pub section: Option<String>,
    pub match_threshold: Option<f64>,
}

struct Checked {
    name: String,
    department: String,
    year: Option<i32>,
    section: Option<String>,
    match_threshold: Option<f64>,
}

fn check(fields: ClassFields) -> Result<Checked, ServiceError> {
    if let Some(y) = fields.year
        && !(1..=10).contains(&y)
    {
        return Err(ServiceError::invalid(
            "invalid_field",
            "year must be between 1 and 10",
        ));
    }
    if let Some(t) = fields.match_threshold
        && !(t > 0.0 && t < 2.0)
    {
        return Err(ServiceError::invalid(
            "invalid_field",
            "match_threshold must be a distance between 0 and 2",
        ));
    }
    Ok(Checked {
        name: required_text("name", &fields.name, 200)?,
        department: required_text("department", &fields.department, 200)?,
        year: fields.year,
        section: optional_text("section", fields.section.as_deref(), 50)?,
        match_threshold: fields.match_threshold,
    })
}

/// A department-scoped caller may only place a class in its own department; naming
/// another one is refused with 403 (the caller wrote that name, so nothing leaks).
fn ensure_own_department(scope: &Scope, department: &str) -> Result<(), ServiceError> {
    if scope.sees(department) {
        Ok(())
    } else {
        Err(ServiceError::Forbidden(
            "this key may only manage classes of its own department".into(),
        ))
    }
}

pub async fn create(
    db: &impl ConnectionTrait,
    scope: &Scope,
    fields: ClassFields,
) -> Result<class::Model, ServiceError> {
    let c = check(fields)?;
    ensure_own_department(scope, &c.department)?;
    let model = class::ActiveModel {
        id: Set(Uuid::new_v4()),
        name: Set(c.name),
        department: Set(c.department),
        year: Set(c.year),
        section: Set(c.section),
        match_threshold: Set(c.match_threshold),
        created_at: Set(Utc::now()),
    }
    .insert(db)
    .await?;
    Ok(model)
}

pub async fn get(
    db: &impl ConnectionTrait,
    scope: &Scope,
    id: Uuid,
) -> Result<class::Model, ServiceError> {
    scope.class(db, id).await
}

pub async fn list(
    db: &impl ConnectionTrait,
    scope: &Scope,
) -> Result<Vec<class::Model>, ServiceError> {
    let mut q = class::Entity::find();
    if let Scope::Department(d) = scope {
        q = q.filter(class::Column::Department.eq(d.as_str()));
    }
    Ok(q.order_by_asc(class::Column::Department)
        .order_by_asc(class::Column::Name)
        .order_by_asc(class::Column::Section)
        .all(db)
        .await?)
}

pub async fn replace(
    db: &impl ConnectionTrait,
    scope: &Scope,
    id: Uuid,
    fields: ClassFields,
) -> Result<class::Model, ServiceError> {
    let c = check(fields)?;
    let current = get(db, scope, id).await?;
    ensure_own_department(scope, &c.department)?;
    let mut model: class::ActiveModel = current.into();
    model.name = Set(c.name);
    model.department = Set(c.department);
    model.year = Set(c.year);
    model.section = Set(c.section);
    model.match_threshold = Set(c.match_threshold);
    Ok(model.update(db).await?)
}

/// Deletes an empty class; a class with students or sessions is refused (409) so that
/// no photo or attendance history disappears by accident.
pub async fn delete(
    db: &impl ConnectionTrait,
    scope: &Scope,
    id: Uuid,
) -> Result<(), ServiceError> {
    get(db, scope, id).await?;
    let students = student::Entity::find()
        .filter(student::Column::ClassId.eq(id))
        .count(db)
        .await?;
    let sessions = attendance_session::Entity::find()
        .filter(attendance_session::Column::ClassId.eq(id))
        .count(db)
        .await?;
    if students > 0 || sessions > 0 {
        return Err(ServiceError::conflict(
            "class_not_empty",
            format!("the class has {students} students and {sessions} sessions; delete them first"),
        ));
    }
    class::Entity::delete_by_id(id).exec(db).await?;
    Ok(())
}
