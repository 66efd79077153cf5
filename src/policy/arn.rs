//! ARNs, split once: `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE`. The resource part may itself
//! hold colons, so only the first five are split on.

/// The parts of an ARN, borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arn<'a> {
    pub partition: &'a str,
    pub service: &'a str,
    pub region: &'a str,
    pub account: &'a str,
    pub resource: &'a str,
}

impl<'a> Arn<'a> {
    /// `None` unless `text` starts with `arn:` and has all six parts.
    pub fn parse(text: &'a str) -> Option<Arn<'a>> {
        let mut parts = text.splitn(6, ':');
        if parts.next()? != "arn" {
            return None;
        }
        Some(Arn {
            partition: parts.next()?,
            service: parts.next()?,
            region: parts.next()?,
            account: parts.next()?,
            resource: parts.next()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Arn;

    #[test]
    fn splits_the_five_fields_and_keeps_colons_in_the_resource() {
        let arn =
            Arn::parse("arn:aws:cloudformation:us-east-1:111122223333:stack/s:x/guid").unwrap();
        assert_eq!(
            arn,
            Arn {
                partition: "aws",
                service: "cloudformation",
                region: "us-east-1",
                account: "111122223333",
                resource: "stack/s:x/guid",
            }
        );
        assert_eq!(Arn::parse("arn:aws:s3:::bucket").unwrap().account, "");
        assert_eq!(Arn::parse("arn:aws:s3::bucket"), None);
        assert_eq!(Arn::parse("urn:aws:s3:::bucket"), None);
    }
}
