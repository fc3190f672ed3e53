//! Who may run a field: the checks every resolver starts with (the permission table is
//! `docs/SECURITY.md`).
//!
//! * public fields (catalogue reads) check nothing;
//! * user operations call [`acting_user`]: a `user` token acts as itself (a `userId` naming
//!   anyone else → `FORBIDDEN`), `service` and `admin` tokens name the user;
//! * operator operations call [`admin`], and are written to the audit log by
//!   [`super::audit::audited`].
//!
//! No token → `UNAUTHENTICATED`; a verified token without the right → `FORBIDDEN`.

use async_graphql::{Context, Result};
use domain::ids::UserId;

use super::error::{EdgeCode, edge, invalid_argument};
use crate::auth::{Identity, Role};

/// The identity of the request (anonymous when the transport attached none).
pub fn identity<'a>(ctx: &Context<'a>) -> &'a Identity {
    static ANONYMOUS: Identity = Identity::Anonymous;
    ctx.data_opt::<Identity>().unwrap_or(&ANONYMOUS)
}

/// A verified caller of any role.
///
/// # Errors
/// `UNAUTHENTICATED` without a token.
pub fn caller<'a>(ctx: &Context<'a>) -> Result<(&'a str, Role)> {
    match identity(ctx) {
        Identity::Anonymous => Err(edge(
            EdgeCode::Unauthenticated,
            "this operation needs a token: send `Authorization: Bearer <token>`",
        )),
        Identity::Caller { subject, role } => Ok((subject.as_str(), *role)),
    }
}

/// An operator: role `admin`.
///
/// # Errors
/// `UNAUTHENTICATED` without a token, `FORBIDDEN` for other roles.
pub fn admin<'a>(ctx: &Context<'a>) -> Result<&'a str> {
    let (subject, role) = caller(ctx)?;
    if role == Role::Admin {
        Ok(subject)
    } else {
        Err(edge(
            EdgeCode::Forbidden,
            "this operation is for operators (role admin)",
        ))
    }
}

/// The user a user operation acts for: the token's user for role `user` (`user_id`, if given,
/// must be that user byte for byte), the named `user_id` for `service` and `admin`.
///
/// # Errors
/// `UNAUTHENTICATED` without a token; `FORBIDDEN` when a user names someone else; `0002` when
/// a service or admin names no user or an invalid one.
pub fn acting_user(ctx: &Context<'_>, user_id: Option<&str>) -> Result<UserId> {
    let (subject, role) = caller(ctx)?;
    match (role, user_id) {
        (Role::User, None) => UserId::parse(subject).map_err(invalid_argument),
        (Role::User, Some(named)) if named == subject => UserId::parse(subject).map_err(invalid_argument),
        (Role::User, Some(_)) => Err(edge(EdgeCode::Forbidden, "a user token acts only for its own user")),
        (Role::Service | Role::Admin, Some(named)) => UserId::parse(named).map_err(invalid_argument),
        (Role::Service | Role::Admin, None) => Err(invalid_argument(domain::ids::InvalidArgument(
            "userId is required when a service or admin token calls a user operation".into(),
        ))),
    }
}

/// May the caller see data of `owner` (an outbox event's user)? Admins see all; users their
/// own; services any user's.
///
/// # Errors
/// `UNAUTHENTICATED` without a token; `FORBIDDEN` for another user's data.
pub fn may_read_user(ctx: &Context<'_>, owner: &str) -> Result<()> {
    let (subject, role) = caller(ctx)?;
    match role {
        Role::Admin | Role::Service => Ok(()),
        Role::User if subject == owner => Ok(()),
        Role::User => Err(edge(EdgeCode::Forbidden, "this event belongs to another user")),
    }
}
