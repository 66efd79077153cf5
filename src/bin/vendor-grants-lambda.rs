//! The Lambda function. The CloudFormation protocol and the lifecycle land with issue 3; until
//! then this binary only proves the crate links as a function.

fn main() {
    eprintln!("vendor-grants-lambda: not implemented yet");
    std::process::exit(1);
}
