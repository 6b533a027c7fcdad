//! What kcluster may touch. A resource that carries `kcluster:cluster=<name>` is kcluster's own
//! only with what kcluster alone writes as well: the security group its name `kcluster-<name>`,
//! network interfaces, instances and Elastic IPs the `kcluster:role` and `kcluster:node` tags (a
//! topology cannot set `kcluster:*` tags). Anything else with the cluster's tag, and a cluster whose
//! resources sit in another VPC than the topology's, is refused by its real name and id before
//! anything is planned or destroyed.

use crate::ec2::{Address, Instance, NetworkInterface, SecurityGroup, Tags, tags};

/// A data volume is kcluster's own when it carries the node tags and `kcluster:volume`, which
/// only kcluster writes (a root volume carries its instance's tags, not that one).
pub fn own_volume(t: &Tags) -> bool {
    t.contains_key(tags::ROLE) && t.contains_key(tags::NODE) && t.contains_key(tags::VOLUME)
}

/// The security group kcluster creates for `cluster`.
pub fn group_name(cluster: &str) -> String {
    format!("kcluster-{cluster}")
}

/// The resources carrying `cluster`'s tag that are not kcluster's own, one sentence each.
pub fn foreign(
    cluster: &str,
    groups: &[SecurityGroup],
    interfaces: &[NetworkInterface],
    instances: &[Instance],
    addresses: &[Address],
) -> Vec<String> {
    let own_group = group_name(cluster);
    let named = |t: &Tags| {
        t.get(tags::NAME)
            .map_or("no Name tag".to_string(), |n| format!("Name {n}"))
    };
    let by_node = |t: &Tags| t.contains_key(tags::ROLE) && t.contains_key(tags::NODE);
    let mut found = Vec::new();
    for g in groups.iter().filter(|g| g.name != own_group) {
        found.push(format!(
            "security group {} ({}) in {} carries {}={cluster}, but kcluster's own group is named {own_group}",
            g.id,
            g.name,
            g.vpc_id,
            tags::CLUSTER
        ));
    }
    for n in interfaces.iter().filter(|n| !by_node(&n.tags)) {
        found.push(format!(
            "network interface {} ({}, {}) carries {}={cluster} without the {} and {} tags kcluster gives its own",
            n.id,
            named(&n.tags),
            n.address,
            tags::CLUSTER,
            tags::ROLE,
            tags::NODE
        ));
    }
    for i in instances
        .iter()
        .filter(|i| i.state.is_live() && !by_node(&i.tags))
    {
        found.push(format!(
            "instance {} ({}, {}) carries {}={cluster} without the {} and {} tags kcluster gives its own",
            i.id,
            named(&i.tags),
            i.instance_type,
            tags::CLUSTER,
            tags::ROLE,
            tags::NODE
        ));
    }
    for a in addresses.iter().filter(|a| !by_node(&a.tags)) {
        found.push(format!(
            "Elastic IP {} ({}, {}) carries {}={cluster} without the {} and {} tags kcluster gives its own",
            a.allocation_id,
            named(&a.tags),
            a.public_ip,
            tags::CLUSTER,
            tags::ROLE,
            tags::NODE
        ));
    }
    found
}

/// The refusal for `foreign` resources, or `None` when there are none.
pub fn refuse_foreign(cluster: &str, foreign: &[String]) -> Option<String> {
    if foreign.is_empty() {
        return None;
    }
    Some(format!(
        "kcluster changes and deletes only what it created, and these carry cluster {cluster}'s tag without being kcluster's:\n{}\nkcluster will not adopt, change or delete them. If they are not part of cluster {cluster}, remove the tag (aws ec2 delete-tags --resources ID --tags Key={}), then run kcluster again.",
        bullets(foreign),
        tags::CLUSTER
    ))
}

/// The cluster's resources that sit in another VPC than `vpc`, the topology's.
pub fn in_other_vpcs(
    vpc: &str,
    groups: &[SecurityGroup],
    interfaces: &[NetworkInterface],
) -> Vec<String> {
    let groups = groups
        .iter()
        .filter(|g| g.vpc_id != vpc)
        .map(|g| format!("security group {} ({}) is in {}", g.id, g.name, g.vpc_id));
    let interfaces = interfaces.iter().filter(|n| n.vpc_id != vpc).map(|n| {
        format!(
            "network interface {} ({}) is in {}",
            n.id,
            n.tags.get(tags::NODE).map_or("no node", String::as_str),
            n.vpc_id
        )
    });
    groups.chain(interfaces).collect()
}

/// The refusal for resources in other VPCs, or `None` when there are none.
pub fn refuse_other_vpcs(
    cluster: &str,
    region: &str,
    vpc: &str,
    found: &[String],
) -> Option<String> {
    if found.is_empty() {
        return None;
    }
    Some(format!(
        "cluster {cluster} already has resources in another VPC than the topology's ({vpc}):\n{}\nkcluster does not move a cluster between VPCs, nor manage one name in two. To move it: `kcluster destroy --cluster {cluster} --region {region}` where it is, then apply the topology in {vpc}; or give the cluster in {vpc} another name.",
        bullets(found)
    ))
}

fn bullets(lines: &[String]) -> String {
    lines
        .iter()
        .map(|l| format!("  - {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::{foreign, in_other_vpcs, own_volume};
    use crate::ec2::{NetworkInterface, SecurityGroup, Tags, tags};

    #[test]
    fn only_volumes_with_kcluster_s_volume_tag_are_its_data_volumes() {
        let node = [
            (tags::CLUSTER, "demo"),
            (tags::ROLE, "broker"),
            (tags::NODE, "broker-1"),
        ];
        // A root volume inherits its instance's tags; a user's volume may carry the cluster tag.
        assert!(!own_volume(&tagged(&node)));
        assert!(!own_volume(&tagged(&[
            (tags::CLUSTER, "demo"),
            (tags::VOLUME, "data")
        ])));
        let mut data = node.to_vec();
        data.push((tags::VOLUME, "data"));
        assert!(own_volume(&tagged(&data)));
    }

    fn tagged(pairs: &[(&str, &str)]) -> Tags {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn group(id: &str, name: &str, vpc: &str) -> SecurityGroup {
        SecurityGroup {
            id: id.into(),
            name: name.into(),
            vpc_id: vpc.into(),
            rules: Vec::new(),
            tags: tagged(&[(tags::CLUSTER, "demo")]),
        }
    }

    fn interface(id: &str, vpc: &str, t: Tags) -> NetworkInterface {
        NetworkInterface {
            id: id.into(),
            subnet_id: "subnet-1".into(),
            vpc_id: vpc.into(),
            zone: "eu-west-1a".into(),
            address: "10.0.0.11".parse().expect("address"),
            instance_id: None,
            tags: t,
        }
    }

    #[test]
    fn a_tagged_group_with_another_name_is_foreign_by_its_real_name() {
        let found = foreign(
            "demo",
            &[
                group("sg-1", "kcluster-demo", "vpc-1"),
                group("sg-2", "bastion-sg", "vpc-1"),
            ],
            &[],
            &[],
            &[],
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("sg-2 (bastion-sg)"), "{found:?}");
    }

    #[test]
    fn interfaces_need_the_node_tags_only_kcluster_writes() {
        let own = tagged(&[
            (tags::CLUSTER, "demo"),
            (tags::ROLE, "broker"),
            (tags::NODE, "broker-1"),
        ]);
        let stray = tagged(&[(tags::CLUSTER, "demo"), (tags::NAME, "ops-eni")]);
        let found = foreign(
            "demo",
            &[],
            &[
                interface("eni-1", "vpc-1", own),
                interface("eni-2", "vpc-1", stray),
            ],
            &[],
            &[],
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("eni-2 (Name ops-eni"), "{found:?}");
    }

    #[test]
    fn an_elastic_ip_with_the_cluster_tag_but_not_kcluster_s_node_tags_is_foreign() {
        let address = |id: &str, t: Tags| crate::ec2::Address {
            allocation_id: id.into(),
            public_ip: "198.51.100.7".into(),
            association_id: None,
            interface_id: None,
            tags: t,
        };
        let own = tagged(&[
            (tags::CLUSTER, "demo"),
            (tags::ROLE, "broker"),
            (tags::NODE, "broker-1"),
        ]);
        let stray = tagged(&[(tags::CLUSTER, "demo"), (tags::NAME, "bastion-ip")]);
        let found = foreign(
            "demo",
            &[],
            &[],
            &[],
            &[address("eipalloc-1", own), address("eipalloc-2", stray)],
        );
        assert_eq!(
            found,
            [
                "Elastic IP eipalloc-2 (Name bastion-ip, 198.51.100.7) carries kcluster:cluster=demo without the kcluster:role and kcluster:node tags kcluster gives its own"
            ]
        );
    }

    #[test]
    fn resources_in_another_vpc_are_named() {
        let found = in_other_vpcs(
            "vpc-new",
            &[group("sg-1", "kcluster-demo", "vpc-old")],
            &[interface("eni-1", "vpc-new", Tags::new())],
        );
        assert_eq!(found, ["security group sg-1 (kcluster-demo) is in vpc-old"]);
    }
}
