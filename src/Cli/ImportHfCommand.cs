using System.CommandLine;
using ModelCompiler.Frontend;

namespace ModelCompiler.Cli;

/// <summary><c>mc import-hf folder [-o model.arch]</c>: a standalone .arch file for a Hugging Face model folder.</summary>
internal static class ImportHfCommand
{
    public static Command Create(CliContext cli)
    {
        var folder = new Argument<string>("folder") { Description = "a Hugging Face model folder (its config.json's model_type picks the template)" };
        var output = new Option<string?>("--output", "-o") { Description = "write the .arch file here instead of stdout" };
        var set = CommonOptions.Set();
        var command = new Command("import-hf", $"Write a standalone .arch file for a Hugging Face model folder (model_type: {string.Join(", ", HuggingFaceImport.Templates.Keys)}).")
        {
            folder, output, set,
        };
        command.SetAction(parse =>
        {
            var path = parse.GetValue(folder)!;
            if (!HuggingFaceImport.IsModelFolder(path)) throw new Runtime.McException($"{path}: not a Hugging Face model folder (no config.json)");
            var text = HuggingFaceImport.ToArchText(path, CommonOptions.ParseSets(parse.GetValue(set)));
            var target = parse.GetValue(output);
            if (target is null) cli.Out.Write(text);
            else
            {
                File.WriteAllText(target, text);
                cli.Out.WriteLine($"wrote {target}");
            }
            return McApp.Ok;
        });
        return command;
    }
}
