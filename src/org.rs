//! The organization tree as the guide draws it, and who may manage which part of it.
//!
//! Master administrators manage everything. An administrator manages the technician groups assigned
//! to it, their subgroups and their technicians. Technicians manage nothing. The tree is small (people
//! and groups, not sessions), so it is loaded whole and reasoned about in memory.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::store::{Group, GroupKind, Role, User};

pub struct Org {
    pub groups: Vec<Group>,
    pub users: Vec<User>,
    /// (administrator id, technician group id)
    pub assignments: Vec<(i64, i64)>,
}

/// A node of the tree, fit to draw: ids are unique per `kind`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OrgNode {
    /// `root`, `master_administrator`, `administrator`, `administrator_group`, `technician_group`,
    /// `technician`.
    pub kind: String,
    /// Absent on the three fixed roots.
    pub id: Option<i64>,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub enabled: bool,
    /// For administrators: the technician groups assigned to them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub assigned_technician_group_ids: Vec<i64>,
    #[schema(no_recursion)]
    pub children: Vec<OrgNode>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OrgTree {
    /// Three roots, in the guide's order: Master Administrators, Administrators, Technicians.
    /// An administrator sees only the technician groups it manages (and no administrator branches).
    pub roots: Vec<OrgNode>,
}

impl Org {
    pub fn group(&self, id: i64) -> Option<&Group> {
        self.groups.iter().find(|g| g.id == id)
    }

    fn children_of(&self) -> HashMap<Option<i64>, Vec<&Group>> {
        let mut map: HashMap<Option<i64>, Vec<&Group>> = HashMap::new();
        for g in &self.groups {
            map.entry(g.parent_id).or_default().push(g);
        }
        map
    }

    /// The group and all groups below it.
    pub fn subtree(&self, id: i64) -> HashSet<i64> {
        let children = self.children_of();
        let mut out = HashSet::new();
        let mut stack = vec![id];
        while let Some(g) = stack.pop() {
            if out.insert(g)
                && let Some(kids) = children.get(&Some(g))
            {
                stack.extend(kids.iter().map(|k| k.id));
            }
        }
        out
    }

    /// Technician groups an administrator manages: its assigned groups and their subgroups.
    pub fn managed_groups(&self, administrator_id: i64) -> HashSet<i64> {
        let mut out = HashSet::new();
        for (a, g) in &self.assignments {
            if *a == administrator_id {
                out.extend(self.subtree(*g));
            }
        }
        out
    }

    /// Would making `new_parent` the parent of `group` create a cycle?
    pub fn would_cycle(&self, group: i64, new_parent: i64) -> bool {
        self.subtree(group).contains(&new_parent)
    }

    /// The tree for `viewer`; with `query`, only matching nodes (name or email, case-insensitive)
    /// and their ancestors.
    pub fn tree(&self, viewer: &User, query: Option<&str>) -> OrgTree {
        let query = query
            .map(|q| q.trim().to_lowercase())
            .filter(|q| !q.is_empty());
        let matches = |name: &str, email: Option<&str>| match &query {
            None => true,
            Some(q) => {
                name.to_lowercase().contains(q)
                    || email.is_some_and(|e| e.to_lowercase().contains(q))
            }
        };
        let children = self.children_of();
        let mut assigned: HashMap<i64, Vec<i64>> = HashMap::new();
        for (a, g) in &self.assignments {
            assigned.entry(*a).or_default().push(*g);
        }
        let user_node = |u: &User| OrgNode {
            kind: u.role.as_str().to_string(),
            id: Some(u.id),
            name: u.name.clone(),
            email: Some(u.email.clone()),
            enabled: u.enabled,
            assigned_technician_group_ids: assigned.get(&u.id).cloned().unwrap_or_default(),
            children: vec![],
        };
        // Builds a group's node; None when a search leaves nothing in it.
        fn group_node(
            org: &Org,
            g: &Group,
            children: &HashMap<Option<i64>, Vec<&Group>>,
            member: &dyn Fn(&User) -> OrgNode,
            matches: &dyn Fn(&str, Option<&str>) -> bool,
        ) -> Option<OrgNode> {
            let mut kids: Vec<OrgNode> = children
                .get(&Some(g.id))
                .into_iter()
                .flatten()
                .filter(|c| c.kind == g.kind)
                .filter_map(|c| group_node(org, c, children, member, matches))
                .collect();
            kids.extend(
                org.users
                    .iter()
                    .filter(|u| u.group_id == Some(g.id))
                    .filter(|u| matches(&u.name, Some(&u.email)))
                    .map(member),
            );
            if kids.is_empty() && !matches(&g.name, None) {
                return None;
            }
            Some(OrgNode {
                kind: g.kind.as_str().to_string(),
                id: Some(g.id),
                name: g.name.clone(),
                email: None,
                enabled: g.enabled,
                assigned_technician_group_ids: vec![],
                children: kids,
            })
        }
        let root = |name: &str, children: Vec<OrgNode>| OrgNode {
            kind: "root".into(),
            id: None,
            name: name.into(),
            email: None,
            enabled: true,
            assigned_technician_group_ids: vec![],
            children,
        };
        let top_groups = |kind: GroupKind| -> Vec<&Group> {
            children
                .get(&None)
                .into_iter()
                .flatten()
                .copied()
                .filter(|g| g.kind == kind)
                .collect()
        };
        let mut roots = Vec::new();
        match viewer.role {
            Role::MasterAdministrator => {
                let masters = self
                    .users
                    .iter()
                    .filter(|u| u.role == Role::MasterAdministrator)
                    .filter(|u| matches(&u.name, Some(&u.email)))
                    .map(user_node)
                    .collect();
                roots.push(root("Master Administrators", masters));
                let mut admins: Vec<OrgNode> = top_groups(GroupKind::AdministratorGroup)
                    .into_iter()
                    .filter_map(|g| group_node(self, g, &children, &user_node, &matches))
                    .collect();
                admins.extend(
                    self.users
                        .iter()
                        .filter(|u| u.role == Role::Administrator && u.group_id.is_none())
                        .filter(|u| matches(&u.name, Some(&u.email)))
                        .map(user_node),
                );
                roots.push(root("Administrators", admins));
                let techs = top_groups(GroupKind::TechnicianGroup)
                    .into_iter()
                    .filter_map(|g| group_node(self, g, &children, &user_node, &matches))
                    .collect();
                roots.push(root("Technicians", techs));
            }
            Role::Administrator => {
                // The topmost managed groups: managed groups whose parent is not managed.
                let managed = self.managed_groups(viewer.id);
                let tops = self
                    .groups
                    .iter()
                    .filter(|g| managed.contains(&g.id))
                    .filter(|g| g.parent_id.is_none_or(|p| !managed.contains(&p)))
                    .filter_map(|g| group_node(self, g, &children, &user_node, &matches))
                    .collect();
                roots.push(root("Technicians", tops));
            }
            Role::Technician => {}
        }
        OrgTree { roots }
    }
}
