/*
 * dockyard-lxc-runtime: the two OCI-runtime commands conmon runs, done with liblxc.
 *
 * conmon (the per-container monitor exec_lxc shares with exec_oci) runs
 *
 *   RUNTIME --root LXCPATH create --bundle BUNDLE --pid-file PIDFILE [--console-socket SOCK] NAME
 *   RUNTIME --root LXCPATH exec --pid-file PIDFILE --process FILE --detach [--tty] [--console-socket SOCK] NAME
 *
 * with the container's stdio (its pipes) as fds 0-2, and then watches the pid written
 * to PIDFILE: it must become conmon's child (conmon is a subreaper, this program
 * exits) and its exit status is the process's.
 *
 * create forks the *monitor*: a single-threaded process that waits for the driver's
 * "start" byte on BUNDLE/start.fifo, then runs liblxc start() in the foreground
 * (want_daemonize false: the app is PID 1 of its namespaces, as under Docker) and
 * exits with the app's exit code, 128+N when signal N killed it (liblxc's error_num),
 * 255 when LXC could not start it.  The command line is BUNDLE/argv (NUL-separated).
 *
 * exec attaches a process with liblxc attach(): FILE holds NUL-separated fields
 * "uid", "gid", "groups" (comma-separated), "cwd", then the arguments, an empty
 * field, then the environment.  The process looks its command up in the
 * container's PATH and fails as runc does (127 not found, 126 otherwise).
 *
 * With a terminal, the pty master goes to conmon over SOCK (SCM_RIGHTS): for create a
 * pty of the host (LXC gives the app one of the container's own and proxies), for
 * exec one of the container's devpts (/proc/<init>/root/dev/pts/ptmx).
 *
 * Built by the exec_lxc driver on first use (cc -O2 ... -llxc; Debian: gcc, lxc-dev).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <lxc/lxccontainer.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

static void die(const char *fmt, const char *arg)
{
	fprintf(stderr, fmt, arg ? arg : "", strerror(errno));
	fputc('\n', stderr);
	exit(1);
}

/* The whole of a small file, NUL-terminated; *len gets its size. */
static char *slurp(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		die("cannot open %s: %s", path);
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap + 1);
	for (;;) {
		if (n == cap && !(buf = realloc(buf, (cap *= 2) + 1)))
			die("out of memory%s: %s", "");
		ssize_t r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			die("cannot read %s: %s", path);
		if (r == 0)
			break;
		n += r;
	}
	close(fd);
	buf[n] = '\0';
	*len = n;
	return buf;
}

/* Split NUL-separated fields into a NULL-terminated vector. */
static char **fields(char *buf, size_t len, size_t *count)
{
	size_t n = 0;
	for (size_t i = 0; i < len; i++)
		n += buf[i] == '\0';
	char **v = calloc(n + 1, sizeof(char *));
	size_t k = 0;
	for (size_t i = 0; i < len && k < n; i += strlen(buf + i) + 1)
		v[k++] = buf + i;
	*count = k;
	return v;
}

static void write_pid(const char *path, pid_t pid)
{
	char tmp[4096], text[32];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		die("cannot write %s: %s", tmp);
	int n = snprintf(text, sizeof(text), "%d", pid);
	if (write(fd, text, n) != n || close(fd) < 0 || rename(tmp, path) < 0)
		die("cannot write %s: %s", path);
}

/* Hand a terminal's master to conmon (its console socket), as runc does. */
static void send_master(const char *socket_path, int master)
{
	int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	if (strlen(socket_path) >= sizeof(addr.sun_path))
		die("console socket path too long: %s%s", socket_path);
	strcpy(addr.sun_path, socket_path);
	if (sock < 0 || connect(sock, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		die("cannot connect to the console socket %s: %s", socket_path);
	char name[] = "/dev/ptmx";
	struct iovec iov = {.iov_base = name, .iov_len = sizeof(name)};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} control = {0};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
			     .msg_controllen = sizeof(control.buf)};
	struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
	cmsg->cmsg_level = SOL_SOCKET;
	cmsg->cmsg_type = SCM_RIGHTS;
	cmsg->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cmsg), &master, sizeof(int));
	if (sendmsg(sock, &msg, 0) < 0)
		die("cannot send the terminal to conmon%s: %s", "");
	close(sock);
}

static struct lxc_container *container(const char *name, const char *lxcpath)
{
	struct lxc_container *c = lxc_container_new(name, lxcpath);
	if (!c)
		die("cannot load the LXC container %s: %s", name);
	return c;
}

/* liblxc's error_num: exited -> code << 8, killed -> (sig << 8) | 0x7f; Docker's 128+N. */
static int docker_code(int st)
{
	if ((st & 0x7f) == 0x7f)
		return 128 + ((st >> 8) & 0x7f);
	if (st & 0x7f)
		return 128 + (st & 0x7f);
	return (st >> 8) & 0xff;
}

/*
 * LXC gives the app a pty of the container's devpts and copies its output to ours (our
 * stdin), which it puts in raw mode but with OPOST|ONLCR forced on: the app's "\n",
 * already "\r\n" from its own pty, would arrive as "\r\r\n".  LXC does that in the
 * middle of start(), which cannot be interrupted (liblxc refuses to start from a
 * threaded process), so a short-lived grandchild watches our terminal and turns ONLCR
 * off once LXC has set it up (it leaves at once; conmon, the subreaper, reaps it).
 */
static void fix_output_processing(void)
{
	pid_t pid = fork();
	if (pid != 0) {
		if (pid > 0)
			waitpid(pid, NULL, 0);
		return;
	}
	if (fork() != 0)
		_exit(0);
	/* poll for LXC's raw mode for up to 2 s; once seen, keep ONLCR off for 200 ms more */
	int cleared_at = -1;
	for (int i = 0; i < 20000 && (cleared_at < 0 || i - cleared_at < 2000); i++) {
		struct termios t;
		if (tcgetattr(0, &t) < 0)
			break;
		if (!(t.c_lflag & ICANON) && (t.c_oflag & ONLCR)) {
			t.c_oflag &= ~ONLCR;
			tcsetattr(0, TCSANOW, &t);
			if (cleared_at < 0)
				cleared_at = i;
		}
		usleep(100);
	}
	_exit(0);
}

static int create(const char *lxcpath, const char *bundle, const char *pid_file, const char *console, const char *name)
{
	char path[4096];
	size_t len, argc;
	snprintf(path, sizeof(path), "%s/argv", bundle);
	char *raw = slurp(path, &len);
	char **argv = fields(raw, len, &argc);
	if (argc == 0)
		die("no command in %s%s", path);
	snprintf(path, sizeof(path), "%s/start.fifo", bundle);

	int master = -1, slave = -1;
	if (console && openpty(&master, &slave, NULL, NULL, NULL) < 0)
		die("cannot allocate a terminal%s: %s", "");
	pid_t pid = fork();
	if (pid < 0)
		die("cannot fork%s: %s", "");
	if (pid > 0) {
		if (console) {
			send_master(console, master);
			close(master);
			close(slave);
		}
		write_pid(pid_file, pid);
		return 0;
	}

	/* the monitor */
	if (console) {
		close(master);
		if (setsid() < 0 || ioctl(slave, TIOCSCTTY, 0) < 0)
			die("cannot make the terminal controlling%s: %s", "");
		for (int fd = 0; fd < 3; fd++)
			dup2(slave, fd);
		if (slave > 2)
			close(slave);
	}
	int fifo = open(path, O_RDONLY | O_CLOEXEC);     /* blocks until the driver opens it to start */
	char go = 0;
	ssize_t r;
	do
		r = fifo < 0 ? -1 : read(fifo, &go, 1);
	while (r < 0 && errno == EINTR);
	if (r != 1 || go != 'g')
		_exit(255);                             /* removed before it was started */
	close(fifo);
	if (console)
		fix_output_processing();
	signal(SIGPIPE, SIG_DFL);
	struct lxc_container *c = container(name, lxcpath);
	c->want_daemonize(c, false);
	c->want_close_all_fds(c, true);
	bool ok = c->start(c, 0, argv);
	_exit(ok ? docker_code(c->error_num) : 255);
}

struct exec_payload {
	char **argv;
	char **env;
	const char *cwd;
	bool tty;
};

static int fail(const char *prog, const char *what, int code)
{
	fprintf(stderr, "OCI runtime exec failed: exec failed: unable to start container process: exec: \"%s\": %s: unknown\n",
		prog, what);
	return code;
}

/* In the attached process: the last steps before execve, with runc's errors and codes. */
static int exec_in_container(void *data)
{
	struct exec_payload *p = data;
	signal(SIGPIPE, SIG_DFL);
	if (p->tty) {
		setsid();
		ioctl(0, TIOCSCTTY, 0);
	}
	if (chdir(p->cwd) < 0) {
		fprintf(stderr, "OCI runtime exec failed: exec failed: chdir to cwd (\"%s\") set in config.json failed: %s: unknown\n",
			p->cwd, strerror(errno));
		return 126;
	}
	const char *prog = p->argv[0];
	if (strchr(prog, '/')) {
		execve(prog, p->argv, p->env);
		if (errno == ENOENT || errno == ENOTDIR) {
			char what[4200];
			snprintf(what, sizeof(what), "stat %s: no such file or directory", prog);
			return fail(prog, what, 127);
		}
		return fail(prog, errno == EACCES ? "permission denied" : strerror(errno), 126);
	}
	const char *path = DEFAULT_PATH;
	for (char **e = p->env; *e; e++)
		if (!strncmp(*e, "PATH=", 5))
			path = *e + 5;
	int denied = 0;
	char *dirs = strdup(path), *save = NULL;
	for (char *dir = strtok_r(dirs, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
		char full[4200];
		snprintf(full, sizeof(full), "%s/%s", *dir ? dir : ".", prog);
		execve(full, p->argv, p->env);
		if (errno == EACCES)
			denied = 1;
		else if (errno != ENOENT && errno != ENOTDIR)
			return fail(prog, strerror(errno), 126);
	}
	if (denied)
		return fail(prog, "permission denied", 126);
	return fail(prog, "executable file not found in $PATH", 127);
}

static int exec_(const char *lxcpath, const char *pid_file, const char *process, const char *console, const char *name)
{
	size_t len, n;
	char *raw = slurp(process, &len);
	char **f = fields(raw, len, &n);
	if (n < 6)
		die("malformed process file %s%s", process);
	lxc_attach_options_t options = LXC_ATTACH_OPTIONS_DEFAULT;
	options.uid = (uid_t)strtoul(f[0], NULL, 10);
	options.gid = (gid_t)strtoul(f[1], NULL, 10);
	gid_t groups[256];
	size_t ngroups = 0;
	for (char *g = f[2], *end; *g && ngroups < 256; g = *end ? end + 1 : end) {
		groups[ngroups++] = (gid_t)strtoul(g, &end, 10);
		if (end == g)
			break;
	}
	options.attach_flags = LXC_ATTACH_DEFAULT | LXC_ATTACH_SETGROUPS;
	options.groups.size = ngroups;
	options.groups.list = groups;
	options.initial_cwd = f[3];
	options.env_policy = LXC_ATTACH_CLEAR_ENV;
	size_t i = 4;
	char **argv = f + i;
	while (i < n && f[i][0])
		i++;
	if (i >= n)
		die("malformed process file %s%s", process);
	f[i] = NULL;                    /* ends argv; the environment follows */
	struct exec_payload payload = {.argv = argv, .env = f + i + 1, .cwd = f[3], .tty = console != NULL};
	options.extra_env_vars = payload.env;

	struct lxc_container *c = container(name, lxcpath);
	int slave = -1;
	if (console) {
		char ptmx[64];
		pid_t init = c->init_pid(c);
		snprintf(ptmx, sizeof(ptmx), "/proc/%d/root/dev/pts/ptmx", init);
		int master = open(ptmx, O_RDWR | O_NOCTTY | O_CLOEXEC);
		int unlock = 0;
		if (init <= 0 || master < 0 || ioctl(master, TIOCSPTLCK, &unlock) < 0 ||
		    (slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC)) < 0)
			die("cannot allocate a terminal in the container%s: %s", "");
		send_master(console, master);
		close(master);
		options.stdin_fd = options.stdout_fd = options.stderr_fd = slave;
	}
	pid_t pid = 0;
	if (c->attach(c, exec_in_container, &payload, &options, &pid) < 0 || pid <= 0)
		die("cannot attach to the container %s: %s", name);
	write_pid(pid_file, pid);
	return 0;
}

int main(int argc, char **argv)
{
	const char *root = NULL, *bundle = NULL, *pid_file = NULL, *console = NULL, *process = NULL, *cmd = NULL;
	const char *name = NULL;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *next = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--root") && next)
			root = argv[++i];
		else if (!strcmp(a, "--bundle") && next)
			bundle = argv[++i];
		else if (!strcmp(a, "--pid-file") && next)
			pid_file = argv[++i];
		else if (!strcmp(a, "--console-socket") && next)
			console = argv[++i];
		else if (!strcmp(a, "--process") && next)
			process = argv[++i];
		else if (!strcmp(a, "--detach") || !strcmp(a, "--tty") || !strcmp(a, "--no-pivot") ||
			 !strcmp(a, "--no-new-keyring"))
			continue;
		else if (!cmd && (!strcmp(a, "create") || !strcmp(a, "exec")))
			cmd = a;
		else if (a[0] != '-' && cmd && !name)
			name = a;
		else {
			fprintf(stderr, "dockyard-lxc-runtime: unexpected argument %s\n", a);
			return 2;
		}
	}
	if (!cmd || !name || !root || !pid_file) {
		fprintf(stderr, "usage: dockyard-lxc-runtime --root LXCPATH create|exec ... NAME\n");
		return 2;
	}
	if (!strcmp(cmd, "create"))
		return bundle ? create(root, bundle, pid_file, console, name) : 2;
	return process ? exec_(root, pid_file, process, console, name) : 2;
}
