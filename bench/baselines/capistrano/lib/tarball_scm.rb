# A minimal SCM plugin: instead of cloning a repository on the server (the git plugin), upload
# one tarball (BENCH_TARBALL) and unpack it into Capistrano's release_path. Hooked at the same
# points as Capistrano::SCM::Git, so the rest of the deploy flow is Capistrano's own.
require "capistrano/scm/plugin"
require "digest"

class TarballSCM < Capistrano::SCM::Plugin
  def set_defaults
    set_if_empty :tarball, -> { ENV.fetch("BENCH_TARBALL") }
    set_if_empty :tarball_upload_path, -> { shared_path.join("incoming.tgz") }
  end

  def register_hooks
    after "deploy:new_release_path", "tarball:create_release"
    before "deploy:check", "tarball:check"
    before "deploy:set_current_revision", "tarball:set_current_revision"
  end

  def define_tasks
    namespace :tarball do
      task :check do
        next unless fetch(:deploying, false) # deploy:rollback runs deploy:check too, with no tarball
        tarball = fetch(:tarball)
        raise "tarball #{tarball} is not a file" unless File.file?(tarball)
      end

      task :create_release do
        on release_roles(:all) do
          upload = fetch(:tarball_upload_path)
          execute :mkdir, "-p", release_path, upload.dirname
          upload! fetch(:tarball), upload.to_s
          execute :tar, "-xzf", upload, "--no-same-owner", "-C", release_path
          execute :rm, "-f", upload
        end
      end

      task :set_current_revision do
        set :current_revision, Digest::SHA256.file(fetch(:tarball)).hexdigest[0, 12]
      end
    end
  end
end
