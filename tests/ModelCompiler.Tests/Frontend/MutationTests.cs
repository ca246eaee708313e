using ModelCompiler.Frontend;
using ModelCompiler.Runtime;

namespace ModelCompiler.Tests.Frontend;

/// <summary>
/// Random edits of real model files (seeded, so failures reproduce): the frontend answers with
/// diagnostics or a one-line McException, never with any other exception.
/// </summary>
public class MutationTests
{
    private static readonly string[] Models = ["gpt2.arch", "bert.arch", "mixtral.arch", "t5.arch", "falcon.arch"];
    private static readonly string[] Tokens = ["{", "}", "(", ")", "[", "]", ",", ":", "=", "==", "\"", "{i}", "#", "..", "-", "//", "?", "0", "-1",
        "99999999999999999999", "1e309", "for", "if", "else", "weight", "block", "return", "output", "hyper", "\n", "x", "tensor", "\\"];

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void MutatedModelsGiveDiagnosticsNotCrashes(int seed)
    {
        var random = new Random(seed);
        var std = string.Join("\n", Directory.GetFiles(Path.Combine(AppContext.BaseDirectory, "examples", "std"), "*.arch").Order().Select(File.ReadAllText)
            .Select(t => string.Join("\n", t.Split('\n').Where(l => !l.StartsWith("import ", StringComparison.Ordinal)))));
        for (int trial = 0; trial < 150; trial++)
        {
            var model = Models[random.Next(Models.Length)];
            var text = File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "examples", model));
            text = string.Join("\n", text.Split('\n').Where(l => !l.StartsWith("import ", StringComparison.Ordinal))) + "\n" + std;
            text = Mutate(text, random, 1 + random.Next(3));
            try
            {
                var diagnostics = new DiagnosticBag();
                var source = ArchLoader.LoadText("mutant.arch", text, diagnostics);
                if (source is null) { Assert.True(diagnostics.HasErrors); continue; }
                var hypers = HyperBinding.Resolve(source, null, null, new Dictionary<string, string>
                {
                    // Keep the models tiny so elaboration stays fast.
                    ["n_layers"] = "1",
                }.Where(kv => source.Hypers.Any(h => h.Name == kv.Key)).ToDictionary());
                Elaborator.Elaborate(source, hypers, diagnostics);
            }
            catch (McException e)
            {
                Assert.DoesNotContain("\n   at ", e.Message);
            }
            catch (Exception e)
            {
                Assert.Fail($"seed {seed}, trial {trial} ({model}): {e.GetType().Name}: {e.Message}\n--- mutant ---\n{text}");
            }
        }
    }

    private static string Mutate(string text, Random random, int edits)
    {
        for (int i = 0; i < edits && text.Length > 0; i++)
        {
            int at = random.Next(text.Length);
            text = random.Next(4) switch
            {
                0 => text.Remove(at, Math.Min(text.Length - at, 1 + random.Next(8))),            // delete a run
                1 => text.Insert(at, Tokens[random.Next(Tokens.Length)]),                           // insert a token
                2 => text[..at] + text[Math.Min(text.Length, at + random.Next(40))..],              // drop a chunk
                _ => text.Insert(at, text.Substring(random.Next(text.Length), Math.Min(20, text.Length - at))), // duplicate a piece
            };
        }
        return text;
    }
}
