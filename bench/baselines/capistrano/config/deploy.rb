# deploy_to is one per cap process, so the benchmark runs one process per host and passes that
# host's settings through the environment (BENCH_*), read here and in config/deploy/bench.rb.
set :application, "bench"
set :deploy_to, ENV.fetch("BENCH_DEPLOY_TO")
set :bench_check, ENV.fetch("BENCH_CHECK")
set :keep_releases, 5

# Airbrussh would otherwise append to log/capistrano.log in this (shared, versioned) folder.
set :format_options, log_file: ENV.fetch("BENCH_CAP_LOG", "/dev/null"), color: false, truncate: false

# Host keys verified against the fleet's known_hosts only; ~/.ssh/config ignored (like `ssh -F /dev/null`).
set :ssh_options, {
  keys: [ENV.fetch("BENCH_KEY")],
  keys_only: true,
  auth_methods: %w[publickey],
  verify_host_key: :always,
  user_known_hosts_file: ENV.fetch("BENCH_KNOWN_HOSTS"),
  global_known_hosts_file: [],
  config: false,
  non_interactive: true,
  timeout: 10,
}

namespace :bench do
  desc "Run the check command in deploy_to; a failure fails the deploy or rollback"
  task :check do
    on release_roles(:all) do
      within deploy_path do
        execute :sh, "-c", fetch(:bench_check).shellescape
      end
    end
  end
end

# deploy:rollback also goes through deploy:published, so this one hook checks after both.
after "deploy:published", "bench:check"
