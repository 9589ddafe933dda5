"""Configuration: invoke's configuration tree (and the environment) in, typed `Settings` out;
every bad value is one line naming where it came from."""
