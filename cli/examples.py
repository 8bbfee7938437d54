"""An example for every command's ``--help``, keyed by the function that implements it.

Docker's help texts and the guidebook teach by example; the help of each command
ends with one (or a few) here.  :class:`~dockyard.cli.lazy.PlainCommand` reads this
table only when it formats help, so running a command never imports it.  A test
holds every entry of :mod:`dockyard.cli.commands` to having one.
"""

from __future__ import annotations

__all__ = ["EXAMPLES", "epilog"]

EXAMPLES: dict[str, str] = {
    "container:run": "dockyard run --rm -it busybox sh\n"
    "dockyard run -d --name web -p 8080:80 busybox httpd -f -p 80\n"
    "dockyard run -d=true -e GREETING=hi -v data:/data busybox env",
    "container:create": "dockyard create --name web -p 8080:80 busybox httpd -f -p 80",
    "container:start": "dockyard start -a web",
    "container:stop": "dockyard stop -t 5 web",
    "container:restart": "dockyard restart web",
    "container:kill": "dockyard kill -s HUP web",
    "container:wait": "dockyard wait job",
    "container:rm": "dockyard rm -f web\ndockyard rm $(dockyard ps -aq)",
    "container:ls": "dockyard ps -a\n"
    "dockyard ps --filter status=exited -q\n"
    "dockyard ps --format 'table {{.Names}}\\t{{.Status}}'",
    "container:logs": "dockyard logs -f --tail 10 web",
    "container:inspect": "dockyard container inspect -f '{{.State.Status}}' web",
    "container:port": "dockyard port web 80",
    "container:rename": "dockyard rename web frontend",
    "container:cp": "dockyard cp web:/etc/hostname .\ndockyard cp ./index.html web:/www/",
    "container:attach": "dockyard attach --sig-proxy=false web",
    "layers:diff": "dockyard diff web",
    "layers:commit": "dockyard commit -m 'add index' web me/web:1",
    "layers:export": "dockyard export -o web.tar web",
    "layers:history": "dockyard history --no-trunc busybox",
    "layers:tag": "dockyard tag busybox 127.0.0.1:5000/me/busybox:1",
    "layers:save": "dockyard save -o busybox.tar busybox",
    "layers:load": "dockyard load -i busybox.tar",
    "exec_commands:exec_": "dockyard exec -it web sh\ndockyard exec web cat /etc/hostname",
    "exec_commands:pause": "dockyard pause web",
    "exec_commands:unpause": "dockyard unpause web",
    "exec_commands:top": "dockyard top web -o pid,comm",
    "exec_commands:stats": "dockyard stats --no-stream web",
    "exec_commands:update": "dockyard update -m 64m --cpu-shares 512 web",
    "image:ls": "dockyard images -a=false\n"
    "dockyard images --tree\n"
    "dockyard images --format '{{.Repository}}:{{.Tag}} {{.Size}}'",
    "image:import_": "tar -C rootfs -c . | dockyard import - me/base:1",
    "image:inspect": "dockyard image inspect -f '{{json .Config.Cmd}}' busybox",
    "image:rm": "dockyard rmi me/web:1",
    "inspect:inspect": "dockyard inspect -f '{{index .Config.Labels \"tier\"}}' web",
    "build:build": "dockyard build -t me/app:1 .\ndockyard build -f Dockerfile.dev -t me/app:dev .",
    "registry:pull": "dockyard pull busybox\ndockyard pull 127.0.0.1:5000/me/app:1",
    "registry:push": "dockyard push 127.0.0.1:5000/me/app:1",
    "registry:login": "dockyard login -u me 127.0.0.1:5000",
    "registry:logout": "dockyard logout 127.0.0.1:5000",
    "registry:search": "dockyard search --limit 5 busybox",
    "system:version": "dockyard version --format '{{.Server.Version}}'",
    "system:info": "dockyard info --format '{{.Driver}}'",
    "events:events": "dockyard events --since 10m --filter event=die",
    "completion:completion": "source <(dockyard completion bash)\n"
    "dockyard completion fish > ~/.config/fish/completions/dockyard.fish",
    "daemon:daemon": "dockyard daemon -H unix:///var/run/dockyard.sock -H tcp://127.0.0.1:4243 --ui",
    "ui:ui": "dockyard ui\ndockyard -H unix:///var/run/dockyard.sock ui --port 8090 --no-browser",
    "network:ls": "dockyard network ls --format '{{.Name}} {{.Driver}}'",
    "network:inspect": "dockyard network inspect app",
    "network:create": "dockyard network create --subnet 10.99.0.0/24 app",
    "network:rm": "dockyard network rm app",
    "network:connect": "dockyard network connect app web",
    "network:disconnect": "dockyard network disconnect app web",
    "network:prune": "dockyard network prune",
    "registry_server:serve": "dockyard registry serve --listen 127.0.0.1:5000 --root /srv/registry",
    "registry_server:adduser": "dockyard registry adduser --root /srv/registry me",
    "registry_server:gc": "dockyard registry gc --root /srv/registry",
    "registry_server:describe": "dockyard registry describe 127.0.0.1:5000/me/app --description 'my app'",
    "registry_server:delete": "dockyard registry delete 127.0.0.1:5000/me/app",
    "registry_server:user_add": "dockyard registry user add --root /srv/registry me",
    "registry_server:user_passwd": "dockyard registry user passwd --root /srv/registry me",
    "registry_server:user_rm": "dockyard registry user rm --root /srv/registry me",
    "registry_server:user_list": "dockyard registry user list --root /srv/registry",
}


def epilog(target: str) -> str | None:
    """The help epilog showing the examples of the command implemented by ``target``."""
    example = EXAMPLES.get(target)
    if not example:
        return None
    return "Examples:\n\n" + "\n".join("  " + line for line in example.splitlines())
