//! Access control lists: create ACL bindings, describe and delete those a filter matches
//! (CreateAcls, DescribeAcls, DeleteAcls), with josefk's own types for resource types, pattern
//! types, operations and permissions (the codes and names of Java's `AclBinding` family).
//!
//! The broker needs an authorizer (`authorizer.class.name`); without one every call fails with
//! SECURITY_DISABLED. Under KRaft the controller applies ACL changes and brokers learn them from
//! the metadata log, so a change reaches every broker's decisions a moment after the call returns.

use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::{ApiKey, CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest};
use kafka_protocol::protocol::StrBytes;

use super::Admin;
use crate::error::{Error, Result};

macro_rules! wire_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $code:literal,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum $name {
            $($(#[$vdoc])* $variant,)*
            /// A code this version of josefk does not know (Java's `UNKNOWN` is code 0).
            Unknown(i8),
        }

        impl $name {
            /// The protocol code.
            pub fn code(self) -> i8 {
                match self {
                    $($name::$variant => $code,)*
                    $name::Unknown(code) => code,
                }
            }

            /// The value of a protocol code.
            pub fn from_code(code: i8) -> Self {
                match code {
                    $($code => $name::$variant,)*
                    other => $name::Unknown(other),
                }
            }
        }
    };
}

wire_enum! {
    /// The kind of resource an ACL is about (Java `ResourceType`).
    ResourceType {
        /// Any type (filters only).
        Any = 1,
        /// A topic.
        Topic = 2,
        /// A consumer group.
        Group = 3,
        /// The cluster (name `kafka-cluster`).
        Cluster = 4,
        /// A `transactional.id`.
        TransactionalId = 5,
        /// A delegation token.
        DelegationToken = 6,
        /// A user (for quotas and delegation tokens).
        User = 7,
    }
}

wire_enum! {
    /// How an ACL's resource name matches resource names (Java `PatternType`).
    PatternType {
        /// Any pattern type (filters only).
        Any = 1,
        /// Every binding that applies to the filter's name: literal, wildcard `*` and prefixed
        /// (filters only).
        Match = 2,
        /// The name exactly, or every name when it is `*`.
        Literal = 3,
        /// Every name starting with it.
        Prefixed = 4,
    }
}

wire_enum! {
    /// What an ACL allows or denies (Java `AclOperation`).
    AclOperation {
        /// Any operation (filters only).
        Any = 1,
        /// Every operation.
        All = 2,
        /// Read.
        Read = 3,
        /// Write.
        Write = 4,
        /// Create.
        Create = 5,
        /// Delete.
        Delete = 6,
        /// Alter.
        Alter = 7,
        /// Describe.
        Describe = 8,
        /// Broker-to-broker actions.
        ClusterAction = 9,
        /// Describe configs.
        DescribeConfigs = 10,
        /// Alter configs.
        AlterConfigs = 11,
        /// Idempotent writes (cluster resource).
        IdempotentWrite = 12,
        /// Create delegation tokens.
        CreateTokens = 13,
        /// Describe delegation tokens.
        DescribeTokens = 14,
        /// Two-phase commit of transactions (KIP-939).
        TwoPhaseCommit = 15,
    }
}

wire_enum! {
    /// Whether an ACL allows or denies (Java `AclPermissionType`).
    AclPermission {
        /// Either (filters only).
        Any = 1,
        /// Deny; a matching deny wins over any allow.
        Deny = 2,
        /// Allow.
        Allow = 3,
    }
}

/// One ACL: a principal may (or may not) do an operation on resources, from a host.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub struct AclBinding {
    /// The kind of resource.
    pub resource_type: ResourceType,
    /// The resource name (`kafka-cluster` for the cluster; `*` for every name when literal).
    pub resource_name: String,
    /// How the name matches.
    pub pattern_type: PatternType,
    /// The principal, `User:alice` (or `User:*` for everyone).
    pub principal: String,
    /// The client host it applies to, `*` for any.
    pub host: String,
    /// The operation.
    pub operation: AclOperation,
    /// Allow or deny.
    pub permission: AclPermission,
}

impl AclBinding {
    /// `principal` may (`Allow`) or may not (`Deny`) do `operation` on the resource literally
    /// named `resource_name`, from any host.
    pub fn new(
        resource_type: ResourceType,
        resource_name: impl Into<String>,
        principal: impl Into<String>,
        operation: AclOperation,
        permission: AclPermission,
    ) -> Self {
        AclBinding {
            resource_type,
            resource_name: resource_name.into(),
            pattern_type: PatternType::Literal,
            principal: principal.into(),
            host: "*".into(),
            operation,
            permission,
        }
    }

    /// Applies to every resource whose name starts with the resource name.
    pub fn prefixed(mut self) -> Self {
        self.pattern_type = PatternType::Prefixed;
        self
    }

    /// Applies only to clients connecting from `host`.
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = host.into();
        self
    }

    /// An `Any`, `Match` or unknown value cannot be part of a binding.
    fn validate(&self) -> Result<()> {
        let concrete = !matches!(
            self.resource_type,
            ResourceType::Any | ResourceType::Unknown(_)
        ) && matches!(
            self.pattern_type,
            PatternType::Literal | PatternType::Prefixed
        ) && !matches!(self.operation, AclOperation::Any | AclOperation::Unknown(_))
            && matches!(self.permission, AclPermission::Allow | AclPermission::Deny);
        if !concrete {
            return Err(Error::InvalidArgument(format!(
                "an ACL binding names one resource type, a literal or prefixed pattern, one \
                 operation and allow or deny: {self:?}"
            )));
        }
        Ok(())
    }
}

/// Which ACL bindings [`Admin::describe_acls`] and [`Admin::delete_acls`] act on (Java
/// `AclBindingFilter`). Every field left as [`AclFilter::any`] makes it matches anything.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct AclFilter {
    /// The resource type, or `Any`.
    pub resource_type: ResourceType,
    /// The resource name; `None` for any.
    pub resource_name: Option<String>,
    /// The pattern type: `Any`, `Match`, `Literal` or `Prefixed`.
    pub pattern_type: PatternType,
    /// The principal; `None` for any.
    pub principal: Option<String>,
    /// The host; `None` for any.
    pub host: Option<String>,
    /// The operation, or `Any`.
    pub operation: AclOperation,
    /// The permission, or `Any`.
    pub permission: AclPermission,
}

impl AclFilter {
    /// Matches every binding.
    pub fn any() -> Self {
        AclFilter {
            resource_type: ResourceType::Any,
            resource_name: None,
            pattern_type: PatternType::Any,
            principal: None,
            host: None,
            operation: AclOperation::Any,
            permission: AclPermission::Any,
        }
    }

    /// Only bindings on resources of `resource_type` named `name` (pattern type as set; `Any`
    /// by default: the literal binding and a prefixed one with exactly this name).
    pub fn resource(mut self, resource_type: ResourceType, name: impl Into<String>) -> Self {
        self.resource_type = resource_type;
        self.resource_name = Some(name.into());
        self
    }

    /// Only bindings of this pattern type.
    pub fn pattern_type(mut self, pattern_type: PatternType) -> Self {
        self.pattern_type = pattern_type;
        self
    }

    /// Only bindings for `principal` (`User:alice`).
    pub fn principal(mut self, principal: impl Into<String>) -> Self {
        self.principal = Some(principal.into());
        self
    }

    /// Only bindings of `operation`.
    pub fn operation(mut self, operation: AclOperation) -> Self {
        self.operation = operation;
        self
    }

    /// Only bindings of `permission`.
    pub fn permission(mut self, permission: AclPermission) -> Self {
        self.permission = permission;
        self
    }
}

impl From<&AclBinding> for AclFilter {
    /// Matches exactly this binding.
    fn from(b: &AclBinding) -> Self {
        AclFilter {
            resource_type: b.resource_type,
            resource_name: Some(b.resource_name.clone()),
            pattern_type: b.pattern_type,
            principal: Some(b.principal.clone()),
            host: Some(b.host.clone()),
            operation: b.operation,
            permission: b.permission,
        }
    }
}

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

impl Admin {
    /// Creates ACL bindings (one CreateAcls through any broker; the controller applies it).
    /// Creating a binding that exists already succeeds. The first binding the broker refuses
    /// fails the call, naming it; bindings before it in the same request may have been created.
    ///
    /// Cancellation: if dropped after the request was sent, the bindings may have been created.
    ///
    /// ```no_run
    /// use josefk::admin::{AclBinding, AclOperation, AclPermission, Admin, ResourceType};
    /// use josefk::ClientConfig;
    /// # async fn demo() -> josefk::Result<()> {
    /// # let admin = Admin::connect(ClientConfig::new("127.0.0.1:9092")).await?;
    /// let read_orders = AclBinding::new(
    ///     ResourceType::Topic,
    ///     "orders",
    ///     "User:billing",
    ///     AclOperation::Read,
    ///     AclPermission::Allow,
    /// );
    /// admin.create_acls(&[read_orders]).await?;
    /// # Ok(()) }
    /// ```
    #[tracing::instrument(
        name = "kafka.admin.create_acls",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn create_acls(&self, bindings: &[AclBinding]) -> Result<()> {
        for b in bindings {
            b.validate()?;
        }
        if bindings.is_empty() {
            return Ok(());
        }
        let request = CreateAclsRequest::default().with_creations(
            bindings
                .iter()
                .map(|b| {
                    AclCreation::default()
                        .with_resource_type(b.resource_type.code())
                        .with_resource_name(text(&b.resource_name))
                        .with_resource_pattern_type(b.pattern_type.code())
                        .with_principal(text(&b.principal))
                        .with_host(text(&b.host))
                        .with_operation(b.operation.code())
                        .with_permission_type(b.permission.code())
                })
                .collect(),
        );
        let call = self.call(ApiKey::CreateAcls);
        let create = self.retrying(|conn| {
            let request = request.clone();
            let call = &call;
            async move {
                let response = call.send(&conn, &request).await?;
                if response.results.len() != bindings.len() {
                    return Err(Error::Protocol {
                        api: Some(crate::error::ApiKey::CreateAcls),
                        broker: Some(conn.broker().clone()),
                        message: format!(
                            "{} results for {} ACL creations",
                            response.results.len(),
                            bindings.len()
                        ),
                    });
                }
                for (b, r) in bindings.iter().zip(&response.results) {
                    let message = match &r.error_message {
                        Some(m) => format!("{b:?}: {m}"),
                        None => format!("{b:?}"),
                    };
                    Error::check_code(
                        ApiKey::CreateAcls,
                        Some(conn.broker()),
                        r.error_code,
                        Some(&message),
                    )?;
                }
                Ok(())
            }
        });
        call.run(create).await
    }

    /// The ACL bindings `filter` matches, sorted.
    ///
    /// Cancellation: dropping the future changes nothing (it only reads).
    ///
    /// ```no_run
    /// use josefk::admin::{AclFilter, Admin, ResourceType};
    /// use josefk::ClientConfig;
    /// # async fn demo() -> josefk::Result<()> {
    /// # let admin = Admin::connect(ClientConfig::new("127.0.0.1:9092")).await?;
    /// let filter = AclFilter::any().resource(ResourceType::Topic, "orders");
    /// for acl in admin.describe_acls(&filter).await? {
    ///     println!("{} may {:?} ({:?})", acl.principal, acl.operation, acl.permission);
    /// }
    /// # Ok(()) }
    /// ```
    #[tracing::instrument(
        name = "kafka.admin.describe_acls",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn describe_acls(&self, filter: &AclFilter) -> Result<Vec<AclBinding>> {
        let request = DescribeAclsRequest::default()
            .with_resource_type_filter(filter.resource_type.code())
            .with_resource_name_filter(filter.resource_name.as_deref().map(text))
            .with_pattern_type_filter(filter.pattern_type.code())
            .with_principal_filter(filter.principal.as_deref().map(text))
            .with_host_filter(filter.host.as_deref().map(text))
            .with_operation(filter.operation.code())
            .with_permission_type(filter.permission.code());
        let call = self.call(ApiKey::DescribeAcls);
        let describe = self.retrying(|conn| {
            let request = request.clone();
            async move {
                let response = conn.send(&request).await?;
                Error::check_code(
                    ApiKey::DescribeAcls,
                    Some(conn.broker()),
                    response.error_code,
                    response.error_message.as_deref(),
                )?;
                Ok(response)
            }
        });
        let response = call.run(describe).await?;
        let mut out: Vec<AclBinding> = response
            .resources
            .iter()
            .flat_map(|r| {
                r.acls.iter().map(move |a| AclBinding {
                    resource_type: ResourceType::from_code(r.resource_type),
                    resource_name: r.resource_name.to_string(),
                    pattern_type: PatternType::from_code(r.pattern_type),
                    principal: a.principal.to_string(),
                    host: a.host.to_string(),
                    operation: AclOperation::from_code(a.operation),
                    permission: AclPermission::from_code(a.permission_type),
                })
            })
            .collect();
        out.sort();
        Ok(out)
    }

    /// Deletes every ACL binding any of `filters` matches and returns the deleted bindings,
    /// sorted (one DeleteAcls through any broker). A filter that matches nothing deletes
    /// nothing. The first refused filter or binding fails the call, naming it; others in the
    /// same request may have been deleted.
    ///
    /// Cancellation: if dropped after the request was sent, the bindings may have been deleted.
    ///
    /// ```no_run
    /// use josefk::admin::{AclFilter, Admin};
    /// use josefk::ClientConfig;
    /// # async fn demo() -> josefk::Result<()> {
    /// # let admin = Admin::connect(ClientConfig::new("127.0.0.1:9092")).await?;
    /// let removed = admin.delete_acls(&[AclFilter::any().principal("User:mallory")]).await?;
    /// println!("removed {} ACLs", removed.len());
    /// # Ok(()) }
    /// ```
    #[tracing::instrument(
        name = "kafka.admin.delete_acls",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn delete_acls(&self, filters: &[AclFilter]) -> Result<Vec<AclBinding>> {
        if filters.is_empty() {
            return Ok(Vec::new());
        }
        let request = DeleteAclsRequest::default().with_filters(
            filters
                .iter()
                .map(|f| {
                    DeleteAclsFilter::default()
                        .with_resource_type_filter(f.resource_type.code())
                        .with_resource_name_filter(f.resource_name.as_deref().map(text))
                        .with_pattern_type_filter(f.pattern_type.code())
                        .with_principal_filter(f.principal.as_deref().map(text))
                        .with_host_filter(f.host.as_deref().map(text))
                        .with_operation(f.operation.code())
                        .with_permission_type(f.permission.code())
                })
                .collect(),
        );
        let call = self.call(ApiKey::DeleteAcls);
        let delete = self.retrying(|conn| {
            let request = request.clone();
            let call = &call;
            async move {
                let response = call.send(&conn, &request).await?;
                for (f, r) in filters.iter().zip(&response.filter_results) {
                    let message = match &r.error_message {
                        Some(m) => format!("{f:?}: {m}"),
                        None => format!("{f:?}"),
                    };
                    Error::check_code(
                        ApiKey::DeleteAcls,
                        Some(conn.broker()),
                        r.error_code,
                        Some(&message),
                    )?;
                }
                Ok(response)
            }
        });
        let response = call.run(delete).await?;
        let mut out = Vec::new();
        for r in &response.filter_results {
            for m in &r.matching_acls {
                let binding = AclBinding {
                    resource_type: ResourceType::from_code(m.resource_type),
                    resource_name: m.resource_name.to_string(),
                    pattern_type: PatternType::from_code(m.pattern_type),
                    principal: m.principal.to_string(),
                    host: m.host.to_string(),
                    operation: AclOperation::from_code(m.operation),
                    permission: AclPermission::from_code(m.permission_type),
                };
                let message = match &m.error_message {
                    Some(e) => format!("{binding:?}: {e}"),
                    None => format!("{binding:?}"),
                };
                Error::check_code(ApiKey::DeleteAcls, None, m.error_code, Some(&message))?;
                out.push(binding);
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_javas_and_unknown_ones_survive() {
        assert_eq!(ResourceType::Topic.code(), 2);
        assert_eq!(ResourceType::TransactionalId.code(), 5);
        assert_eq!(PatternType::Prefixed.code(), 4);
        assert_eq!(AclOperation::IdempotentWrite.code(), 12);
        assert_eq!(AclPermission::Allow.code(), 3);
        for code in -1..=20 {
            assert_eq!(AclOperation::from_code(code).code(), code);
            assert_eq!(ResourceType::from_code(code).code(), code);
        }
        assert_eq!(AclOperation::from_code(99), AclOperation::Unknown(99));
    }

    #[test]
    fn a_binding_must_be_concrete() {
        let ok = AclBinding::new(
            ResourceType::Topic,
            "t",
            "User:a",
            AclOperation::Read,
            AclPermission::Allow,
        );
        assert!(ok.validate().is_ok());
        assert!(ok.clone().prefixed().validate().is_ok());
        let mut any_op = ok.clone();
        any_op.operation = AclOperation::Any;
        assert!(matches!(any_op.validate(), Err(Error::InvalidArgument(_))));
        let mut matching = ok;
        matching.pattern_type = PatternType::Match;
        assert!(matches!(
            matching.validate(),
            Err(Error::InvalidArgument(_))
        ));
    }
}
