"""The steps of a `ckpt run` pipeline file as the subcommands' command lines, one line per step:
COMMAND, then its arguments, tab-separated, read as `ckpt run` reads a step's options (true: a
flag, false: nothing, a list: the option repeated). Used by the tests and the benchmark that run a
pipeline's commands one after another to compare with `ckpt run`.
    python3 pipeline_steps.py PIPELINE.json"""
import json
import sys

for step in json.load(open(sys.argv[1]))["steps"]:
    (cmd, opts), = step.items()
    args = [cmd]
    for k, v in opts.items():
        for item in (v if isinstance(v, list) else [v]):
            if item is True:
                args.append("--" + k)
            elif item is not False:
                args += ["--" + k, str(item)]
    print("\t".join(args))
