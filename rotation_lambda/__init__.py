"""The MongoDB alternating-users rotation function for AWS Secrets Manager."""
