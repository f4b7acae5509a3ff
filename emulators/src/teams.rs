//! The seeded teams. A team is a Microsoft 365 group with Teams enabled: its id is the group's id,
//! and its photo is the group's photo (Graph's `/teams/{id}/photo` and `/groups/{id}/photo` name
//! the same picture).

use serde::{Deserialize, Serialize};

use crate::directory::GROUP_ID;

/// The seeded team: the "Sales and Marketing" group ([`GROUP_ID`]) with Teams enabled.
pub const TEAM_ID: &str = GROUP_ID;

/// A group of the seed that is not a team ("Photo Admins"): `/teams/{id}` answers 404.
pub const NOT_A_TEAM_GROUP_ID: &str = "2e4c6a80-0000-4b3d-9e21-000000000202";

/// A team.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Team {
    /// The team's id, which is its group's id.
    pub id: String,
    /// Display name (its group's).
    #[serde(rename = "displayName")]
    pub display_name: String,
}

/// The seeded teams.
pub fn seeded_teams() -> Vec<Team> {
    vec![Team {
        id: TEAM_ID.to_string(),
        display_name: "Sales and Marketing".to_string(),
    }]
}

/// The seeded team with this id (case-insensitive).
pub fn team(id: &str) -> Option<Team> {
    seeded_teams()
        .into_iter()
        .find(|t| t.id.eq_ignore_ascii_case(id))
}
