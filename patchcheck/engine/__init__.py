"""Container engines: settings in, a `Runtime` out that starts labelled containers and processes
in them (Docker or Podman through the docker SDK), and the container images they use."""
