# The one host this cap process deploys to.
server ENV.fetch("BENCH_HOST"),
       port: Integer(ENV.fetch("BENCH_PORT")),
       user: ENV.fetch("BENCH_USER"),
       roles: %w[app]
