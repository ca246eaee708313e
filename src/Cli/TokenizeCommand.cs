using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using ModelCompiler.Runtime.Tokenizers;
using Spectre.Console;

namespace ModelCompiler.Cli;

/// <summary><c>mc tokenize &lt;folder | tokenizer.json | tokenizer.model&gt; --text "..."</c>: the tokens and ids of a text.</summary>
internal static class TokenizeCommand
{
    private static readonly JsonSerializerOptions JsonText = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static Command Create(CliContext cli)
    {
        var tokenizer = new Argument<string>("tokenizer") { Description = "a model folder (its tokenizer.json, else tokenizer.model), a tokenizer.json or a SentencePiece .model file" };
        var text = new Option<string>("--text") { Description = "the text to tokenize", Required = true };
        var noSpecial = new Option<bool>("--no-special") { Description = "do not add the special tokens of the post-processor (e.g. BERT's [CLS] ... [SEP])" };
        var json = new Option<bool>("--json") { Description = "print {\"ids\": [...], \"tokens\": [...], \"decoded\": \"...\"} (decoded skips special tokens)" };
        var command = new Command("tokenize", "Encode a text with a model's tokenizer: print its tokens and ids, and the decoded text.")
        {
            tokenizer, text, noSpecial, json,
        };
        command.SetAction(parse =>
        {
            var t = TokenizerLoader.Load(parse.GetValue(tokenizer)!);
            var encoding = t.EncodeWithTokens(parse.GetValue(text)!, addSpecialTokens: !parse.GetValue(noSpecial));
            var decoded = t.Decode(encoding.Ids, skipSpecialTokens: true);
            if (parse.GetValue(json))
            {
                var sb = new StringBuilder();
                sb.Append("{\"ids\": [").Append(string.Join(", ", encoding.Ids.Select(i => i.ToString(CultureInfo.InvariantCulture))));
                sb.Append("], \"tokens\": [").Append(string.Join(", ", encoding.Tokens.Select(Quote)));
                sb.Append("], \"decoded\": ").Append(Quote(decoded)).Append('}');
                cli.Out.WriteLine(sb.ToString());
                return McApp.Ok;
            }
            var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(cli.Out), Ansi = AnsiSupport.No, ColorSystem = ColorSystemSupport.NoColors });
            var table = new Table().AddColumn(new TableColumn("#").RightAligned()).AddColumn(new TableColumn("id").RightAligned()).AddColumn("token");
            for (int i = 0; i < encoding.Ids.Count; i++)
            {
                var mark = t.IsSpecial(encoding.Ids[i]) ? " (special)" : "";
                table.AddRow(i.ToString(CultureInfo.InvariantCulture), encoding.Ids[i].ToString(CultureInfo.InvariantCulture), Markup.Escape(Quote(encoding.Tokens[i]) + mark));
            }
            cli.Out.WriteLine($"{t.Source}: {encoding.Ids.Count} tokens, vocabulary {t.VocabSize}");
            console.Write(table);
            cli.Out.WriteLine($"ids: [{string.Join(", ", encoding.Ids)}]");
            cli.Out.WriteLine($"decoded: {Quote(decoded)}");
            return McApp.Ok;
        });
        return command;
    }

    /// <summary>A JSON string literal: quotes, and escapes for control characters, so whitespace tokens stay visible.</summary>
    private static string Quote(string s) => JsonSerializer.Serialize(s, JsonText);
}
