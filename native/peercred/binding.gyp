{
  "targets": [
    {
      "target_name": "peercred",
      "sources": ["peercred.c", "netns-connect.c", "lane-relay.c", "lane-relay-js.c"],
      "cflags": ["-Wall", "-Wextra", "-O2", "-pthread"]
    }
  ]
}
