//! The organisation's directory: list the members, invite an email,
//! deactivate or reactivate a member, release a member's sign-in identity.

use super::{Cx, email_field, views};
use crate::authz::Action;
use crate::error::ApiError;
use crate::http::Response;
use crate::ids::MemberId;
use crate::wire::{self, Invite, MemberPatch};

/// What a member patch asks for, validated.
enum Patch {
    /// Deactivate (`true`) or reactivate, and maybe release the identity too.
    Status { deactivate: bool, release: bool },
    /// Only release the identity.
    Release,
}

fn patch(body: MemberPatch) -> Result<Patch, ApiError> {
    let release = match body.release_identity {
        None => false,
        Some(true) => true,
        Some(false) => {
            return Err(ApiError::validation("release_identity", "release_identity can only be true (or left out)"));
        }
    };
    match body.status.as_deref() {
        None if release => Ok(Patch::Release),
        Some("deactivated") => Ok(Patch::Status { deactivate: true, release }),
        Some("active") => Ok(Patch::Status { deactivate: false, release }),
        _ => Err(ApiError::validation(
            "status",
            "status must be active or deactivated (or send release_identity: true alone)",
        )),
    }
}

impl Cx<'_> {
    pub(super) fn directory(&self) -> Result<Response, ApiError> {
        self.authorize(Action::ReadDirectory)?;
        let members = self.store.members(self.caller.org())?.iter().map(views::member).collect();
        Ok(Response::json(200, &wire::MemberList { members }))
    }

    /// Any member: who the session is (what the CLI shows after `lanyard login`).
    pub(super) fn me(&self) -> Result<Response, ApiError> {
        let identity = &self.caller.session.identity;
        Ok(Response::json(
            200,
            &wire::Me {
                member: views::member(&self.caller.member),
                organisation: identity.org.clone(),
                issuer: identity.issuer.clone(),
            },
        ))
    }

    pub(super) fn invite(&self) -> Result<Response, ApiError> {
        self.authorize(Action::ManageDirectory)?;
        let body: Invite = self.req.json()?;
        let email = email_field(body.email.as_deref(), "email is required")?;
        let member = self.store.invite(self.caller.org(), &email, self.caller.audit_name(), self.env.now)?;
        Ok(Response::json(201, &views::member(&member)))
    }

    pub(super) fn patch_member(&self) -> Result<Response, ApiError> {
        self.authorize(Action::ManageDirectory)?;
        let org = self.caller.org();
        let patch = patch(self.req.json()?)?;
        let id = self.req.param("member_id").and_then(MemberId::parse).ok_or_else(|| ApiError::not_found("member"))?;
        let member = match patch {
            Patch::Release => self.store.release_identity(org, &id)?,
            Patch::Status { deactivate, release } => {
                if deactivate && id == self.caller.member.id {
                    return Err(ApiError::validation("status", "you cannot deactivate yourself"));
                }
                if release {
                    self.store.release_identity(org, &id)?;
                }
                self.store.set_deactivated(org, &id, deactivate, self.caller.audit_name(), self.env.now)?
            }
        };
        Ok(Response::json(200, &views::member(&member)))
    }
}
