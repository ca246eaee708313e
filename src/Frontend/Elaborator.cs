using System.Collections.Immutable;
using System.Runtime.CompilerServices;
using ModelCompiler.IR;
using ModelCompiler.Runtime;

namespace ModelCompiler.Frontend;

/// <summary>
/// Runs a model's declarations with its hyperparameters fixed, producing the IR: loops unroll,
/// conditionals pick a branch, blocks inline, strings interpolate into weight names, and every
/// tensor operation becomes a typed node. Only <c>batch</c>-like input dimensions stay symbolic.
/// </summary>
public sealed class Elaborator
{
    private const int MaxCallDepth = 64;

    /// <summary>The most iterations one for loop may unroll to, and all loops of a model together.</summary>
    public const long MaxLoopIterations = 100_000, MaxTotalIterations = 1_000_000;

    private readonly ModelSource _source;
    private readonly GraphBuilder _builder;
    private readonly Dictionary<string, Node> _weights = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Dim> _symbols = new(StringComparer.Ordinal);
    private readonly Stack<(string Block, SourceSpan CallSite)> _calls = new();
    private readonly Dictionary<string, int> _callCounts = new(StringComparer.Ordinal);
    private SourceSpan _span;
    private string _scope = "";
    private long _iterations;

    private sealed class Frame(bool isBlock)
    {
        public bool IsBlock { get; } = isBlock;
        public Dictionary<string, Value> Vars { get; } = new(StringComparer.Ordinal);
        public Value? Returned { get; set; }
    }

    private Elaborator(ModelSource source, IReadOnlyDictionary<string, Value> hypers)
    {
        _source = source;
        var name = source.ModelName ?? Path.GetFileNameWithoutExtension(source.RootPath);
        _builder = new GraphBuilder(new Graph(name, hypers.ToDictionary(kv => kv.Key, kv => ValueTypes.ToObject(kv.Value))));
        _span = source.ModelSpan ?? new SourceSpan(source.RootPath, 1, 1);
    }

    /// <summary>Builds the graph, or returns null with the reason in <paramref name="diagnostics"/>.</summary>
    public static Graph? Elaborate(ModelSource source, IReadOnlyDictionary<string, Value> hypers, DiagnosticBag diagnostics)
    {
        var elaborator = new Elaborator(source, hypers);
        try
        {
            return elaborator.Run(hypers);
        }
        catch (DiagnosticException e)
        {
            diagnostics.Add(e.Diagnostic);
            return null;
        }
        catch (OverflowException)
        {
            // Arithmetic is checked; the operators report their own overflows, this catches the rest (shapes).
            diagnostics.Add(new Diagnostic(Severity.Error, Codes.Arithmetic, elaborator._span, "integer overflow"));
            return null;
        }
    }

    private Graph Run(IReadOnlyDictionary<string, Value> hypers)
    {
        if (_source.Forward is null)
            throw Error(Codes.MissingDeclaration, $"{_source.RootPath} has no 'forward {{ ... }}' declaration");
        var frame = new Frame(isBlock: false);
        foreach (var (k, v) in hypers) frame.Vars[k] = v;

        // Inputs first: their types bind the symbolic dimensions.
        foreach (var input in _source.Inputs)
        {
            _span = input.Span;
            var type = EvalTensorType(input.Type, frame, allowSymbols: true, defaultDType: null);
            _builder.CurrentName = input.Name;
            _builder.CurrentSpan = input.Span;
            frame.Vars[input.Name] = new TensorValue(_builder.Input(input.Name, type));
        }
        Execute(_source.Forward.Body, frame);
        if (_builder.Graph.Outputs.Count == 0)
            throw Error(Codes.MissingDeclaration, "forward declares no outputs (add 'output logits = ...')", _source.Forward.Span);
        return _builder.Graph;
    }

    // ---------------------------------------------------------------- statements

    private void Execute(ImmutableArray<Stmt> body, Frame frame)
    {
        foreach (var stmt in body)
        {
            if (frame.Returned is not null) return;
            _span = stmt.Span;
            EnsureStack(stmt.Span);
            switch (stmt)
            {
                case Assign a:
                {
                    SetName(a.Targets[0]);
                    var value = Eval(a.Value, frame);
                    if (a.Targets.Length == 1) frame.Vars[a.Targets[0]] = value;
                    else
                    {
                        if (value is not ListValue list || list.Items.Length != a.Targets.Length)
                            throw Error(Codes.WrongValueType, $"cannot unpack {Describe(value)} into {a.Targets.Length} names", a.Span);
                        for (int k = 0; k < a.Targets.Length; k++) frame.Vars[a.Targets[k]] = list.Items[k];
                    }
                    break;
                }
                case WeightDecl w:
                    frame.Vars[w.Name] = DeclareWeight(w, frame);
                    break;
                case For f:
                {
                    long from = Int(Eval(f.From, frame), f.From.Span), to = Int(Eval(f.To, frame), f.To.Span);
                    // Loops unroll into the graph: a runaway bound must be an error, not a hang.
                    long count = to <= from ? 0 : to - from is var c and > 0 ? c : long.MaxValue;
                    if (count > MaxLoopIterations)
                        throw Error(Codes.TooLarge, $"this loop would unroll {count} iterations ({from} .. {to}); at most {MaxLoopIterations} are allowed", f.Span);
                    _iterations += count;
                    if (_iterations > MaxTotalIterations)
                        throw Error(Codes.TooLarge, $"the model's loops unroll more than {MaxTotalIterations} iterations in total", f.Span);
                    var outer = _scope;
                    for (long k = from; k < to && frame.Returned is null; k++)
                    {
                        frame.Vars[f.Var] = new IntValue(k);
                        _scope = Qualify(outer, $"{f.Var}{k}");   // stable names: i3.rope_attention.q
                        try { Execute(f.Body, frame); }
                        finally { _scope = outer; }
                    }
                    break;
                }
                case If c:
                    Execute(Bool(Eval(c.Condition, frame), c.Condition.Span) ? c.Then : c.Else, frame);
                    break;
                case Return r:
                    if (!frame.IsBlock) throw Error(Codes.ReturnMisplaced, "'return' is only allowed in a block; forward uses 'output name = value'", r.Span);
                    _builder.CurrentName = _scope;
                    frame.Returned = Eval(r.Value, frame);
                    break;
                case Output o:
                {
                    if (frame.IsBlock) throw Error(Codes.ReturnMisplaced, "'output' is only allowed in forward; a block uses 'return'", o.Span);
                    var name = Str(Eval(o.Name, frame), o.Name.Span);
                    SetName(name);
                    var value = Tensor(Eval(o.Value, frame), o.Value.Span);
                    if (_builder.Graph.Outputs.Any(x => x.Key == name))
                        throw Error(Codes.Duplicate, $"output '{name}' is declared twice", o.Span);
                    _builder.Graph.SetOutput(name, value);
                    break;
                }
                case ExprStmt e:
                    Eval(e.Value, frame);
                    break;
            }
        }
    }

    private void SetName(string local) => _builder.CurrentName = Qualify(_scope, local);

    private static string Qualify(string scope, string local) => scope.Length == 0 ? local : $"{scope}.{local}";

    /// <summary>
    /// A checkpoint tensor: the views (transposed, chunk) are undone to find the stored shape, the
    /// tensor is declared once per checkpoint name (tied weights share one node), and the views
    /// become transpose/slice nodes.
    /// </summary>
    private Value DeclareWeight(WeightDecl w, Frame frame)
    {
        var logical = EvalTensorType(w.Type, frame, allowSymbols: false, defaultDType: DType.F32);
        var name = Str(Eval(w.Source, frame), w.Source.Span);
        if (name.Length == 0) throw Error(Codes.BadWeight, "a weight's checkpoint name is empty", w.Source.Span);

        var stored = logical.Shape.ToList();
        foreach (var view in w.Views.Reverse())
        {
            _span = view.Span;
            if (view.Kind == "transposed")
            {
                if (stored.Count != 2) throw Error(Codes.BadWeight, "'transposed' applies to 2-d weights");
                stored.Reverse();
            }
            else
            {
                var (index, parts, axis) = ChunkArgs(view, frame, stored.Count);
                stored[axis] = Dim.Of(checked(stored[axis].Size * parts));
            }
        }
        var storedType = logical.WithShape(stored);
        _span = w.Span;
        if (_weights.TryGetValue(name, out var existing))
        {
            if (!existing.Type.Equals(storedType))
                throw Error(Codes.BadWeight, $"weight '{name}' is declared as {storedType} here but as {existing.Type} at {existing.Span}");
        }
        else
        {
            _builder.CurrentName = name;
            _builder.CurrentSpan = w.Span;
            existing = _builder.Weight(name, storedType);
            _weights[name] = existing;
        }

        SetName(w.Name);
        Node value = existing;
        foreach (var view in w.Views)
        {
            _span = view.Span;
            if (view.Kind == "transposed") value = Build(OpKind.Transpose, [value], Attrs.Empty.With("perm", new long[] { 1, 0 }));
            else
            {
                var (index, parts, axis) = ChunkArgs(view, frame, value.Type.Rank);
                long size = value.Type.Shape[axis].Size / parts;
                value = Build(OpKind.Slice, [value], Attrs.Empty.With("axis", axis).With("start", index * size).With("end", (index + 1) * size));
            }
        }
        return new TensorValue(value);
    }

    private (long Index, long Parts, int Axis) ChunkArgs(WeightView view, Frame frame, int rank)
    {
        if (view.Args.Length is not (2 or 3)) throw Error(Codes.BadArguments, "chunk(index, parts[, axis]) takes 2 or 3 numbers");
        long index = Int(Eval(view.Args[0], frame), view.Args[0].Span);
        long parts = Int(Eval(view.Args[1], frame), view.Args[1].Span);
        long axis = view.Args.Length == 3 ? Int(Eval(view.Args[2], frame), view.Args[2].Span) : 0;
        if (axis < 0) axis += rank;
        if (parts <= 0 || index < 0 || index >= parts) throw Error(Codes.BadWeight, $"chunk({index}, {parts}): index must be in 0..{parts - 1}");
        if (axis < 0 || axis >= rank) throw Error(Codes.BadWeight, $"chunk axis {axis} is out of range for a rank-{rank} weight");
        return (index, parts, (int)axis);
    }

    private TensorType EvalTensorType(TensorTypeExpr t, Frame frame, bool allowSymbols, DType? defaultDType)
    {
        DType dtype;
        if (t.DType.Length == 0)
        {
            if (defaultDType is null) throw Error(Codes.UnknownType, "an input needs an element type, like i64[batch, seq]", t.Span);
            dtype = defaultDType.Value;
        }
        else if (!DTypes.TryParseShortName(t.DType, out dtype))
            throw Error(Codes.UnknownType, $"unknown element type '{t.DType}' (expected f32, f16, bf16, f64, i64, i32, i8, u8 or bool)", t.Span);

        var dims = new List<Dim>();
        foreach (var d in t.Dims)
        {
            if (allowSymbols && d is Ident id && !frame.Vars.ContainsKey(id.Name))
            {
                dims.Add(_symbols.TryGetValue(id.Name, out var s) ? s : _symbols[id.Name] = Dim.Sym(id.Name));
                continue;
            }
            var v = Eval(d, frame);
            if (v is DimValue dv && allowSymbols) { dims.Add(dv.V); continue; }
            long n = Int(v, d.Span);
            if (n <= 0) throw Error(Codes.BadShape, $"dimension {n} must be positive", d.Span);
            dims.Add(Dim.Of(n));
        }
        return new TensorType(dtype, dims.ToImmutableArray());
    }

    // ---------------------------------------------------------------- expressions

    private void EnsureStack(SourceSpan at)
    {
        if (!RuntimeHelpers.TryEnsureSufficientExecutionStack())
            throw Error(Codes.TooDeep, "nested too deeply: simplify this expression or statement (split it with intermediate names)", at);
    }

    private Value Eval(Expr expr, Frame frame)
    {
        EnsureStack(expr.Span);
        switch (expr)
        {
            case IntLit i: return new IntValue(i.Value);
            case FloatLit f: return new FloatValue(f.Value);
            case BoolLit b: return new BoolValue(b.Value);
            case StringLit s:
            {
                var sb = new System.Text.StringBuilder();
                foreach (var part in s.Parts)
                {
                    if (part is string text) sb.Append(text);
                    else
                    {
                        var v = Eval((Expr)part, frame);
                        if (v is TensorValue or ListValue or NoneValue)
                            throw Error(Codes.WrongValueType, $"cannot interpolate {Describe(v)} into a string", ((Expr)part).Span);
                        sb.Append(v);
                    }
                }
                return new StringValue(sb.ToString());
            }
            case Ident id:
                if (frame.Vars.TryGetValue(id.Name, out var value)) return value;
                if (_symbols.TryGetValue(id.Name, out var sym)) return new DimValue(sym);
                throw Error(Codes.UnknownName, $"unknown name '{id.Name}'", id.Span);
            case ListExpr l:
                return new ListValue(l.Items.Select(x => Eval(x, frame)).ToImmutableArray());
            case Unary u:
            {
                var v = Eval(u.Operand, frame);
                _span = u.Span;
                return (u.Op, v) switch
                {
                    ("-", IntValue i) => new IntValue(checked(-i.V)),
                    ("-", FloatValue f) => new FloatValue(-f.V),
                    ("-", TensorValue) => Op(OpKind.Neg, [v]),
                    ("!", BoolValue b) => new BoolValue(!b.V),
                    _ => throw Error(Codes.WrongValueType, $"'{u.Op}' does not apply to {Describe(v)}", u.Span),
                };
            }
            case Binary b: return EvalBinary(b, frame);
            case Conditional c:
                return Bool(Eval(c.Condition, frame), c.Condition.Span) ? Eval(c.Then, frame) : Eval(c.Else, frame);
            case Index ix:
            {
                var target = Eval(ix.Target, frame);
                long at = Int(Eval(ix.At, frame), ix.At.Span);
                if (target is not ListValue list) throw Error(Codes.WrongValueType, $"cannot index {Describe(target)}", ix.Span);
                long k = at < 0 ? at + list.Items.Length : at;
                if (k < 0 || k >= list.Items.Length) throw Error(Codes.WrongValueType, $"index {at} is out of range for a list of {list.Items.Length}", ix.At.Span);
                return list.Items[(int)k];
            }
            case Call call: return EvalCall(call, frame);
            default: throw new InvalidOperationException($"unknown expression {expr.GetType().Name}");
        }
    }

    private Value EvalBinary(Binary b, Frame frame)
    {
        if (b.Op is "&&" or "||")
        {
            bool left = Bool(Eval(b.Left, frame), b.Left.Span);
            if (b.Op == "&&" && !left) return new BoolValue(false);
            if (b.Op == "||" && left) return new BoolValue(true);
            return new BoolValue(Bool(Eval(b.Right, frame), b.Right.Span));
        }
        var l = Eval(b.Left, frame);
        var r = Eval(b.Right, frame);
        _span = b.Span;
        if (l is TensorValue || r is TensorValue)
        {
            var op = b.Op switch
            {
                "+" => OpKind.Add, "-" => OpKind.Sub, "*" => OpKind.Mul, "/" => OpKind.Div,
                _ => throw Error(Codes.WrongValueType, $"'{b.Op}' does not apply to tensors", b.Span),
            };
            return BinaryOp(op, l, r);
        }
        try
        {
            switch (b.Op)
            {
                case "==": return new BoolValue(l.Equals(r) || (IsNumber(l) && IsNumber(r) && Float(l) == Float(r)));
                case "!=": return new BoolValue(!(l.Equals(r) || (IsNumber(l) && IsNumber(r) && Float(l) == Float(r))));
                case "+" when l is StringValue ls && r is StringValue rs: return new StringValue(ls.V + rs.V);
                case "+" when l is ListValue ll && r is ListValue rl: return new ListValue(ll.Items.AddRange(rl.Items));
            }
            if (!IsNumber(l) || !IsNumber(r))
                throw Error(Codes.WrongValueType, $"'{b.Op}' does not apply to {Describe(l)} and {Describe(r)}", b.Span);
            if (l is IntValue li && r is IntValue ri)
            {
                switch (b.Op)
                {
                    case "+": return new IntValue(checked(li.V + ri.V));
                    case "-": return new IntValue(checked(li.V - ri.V));
                    case "*": return new IntValue(checked(li.V * ri.V));
                    case "//":
                    case "%":
                        if (ri.V == 0) throw Error(Codes.Arithmetic, "integer division by zero", b.Span);
                        long q = li.V / ri.V, m = li.V % ri.V;
                        if (m != 0 && (m < 0) != (ri.V < 0)) { q--; m += ri.V; } // floor division, as in Python
                        return new IntValue(b.Op == "//" ? q : m);
                }
            }
            double x = Float(l), y = Float(r);
            return b.Op switch
            {
                "+" => new FloatValue(x + y),
                "-" => new FloatValue(x - y),
                "*" => new FloatValue(x * y),
                "/" => y == 0 ? throw Error(Codes.Arithmetic, "division by zero", b.Span) : new FloatValue(x / y),
                "//" => y == 0 ? throw Error(Codes.Arithmetic, "division by zero", b.Span) : new FloatValue(Math.Floor(x / y)),
                "%" => y == 0 ? throw Error(Codes.Arithmetic, "division by zero", b.Span) : new FloatValue(x - y * Math.Floor(x / y)),
                "<" => new BoolValue(x < y),
                "<=" => new BoolValue(x <= y),
                ">" => new BoolValue(x > y),
                ">=" => new BoolValue(x >= y),
                _ => throw Error(Codes.WrongValueType, $"unknown operator '{b.Op}'", b.Span),
            };
        }
        catch (OverflowException)
        {
            throw Error(Codes.Arithmetic, $"integer overflow in '{b.Op}'", b.Span);
        }
    }

    private static bool IsNumber(Value v) => v is IntValue or FloatValue;

    private Value EvalCall(Call call, Frame frame)
    {
        var args = call.Args.Select(a => (a, Eval(a.Value, frame))).ToList();
        _span = call.Span;
        if (_source.Blocks.TryGetValue(call.Callee, out var block)) return CallBlock(block, call, args);
        if (Builtins.All.TryGetValue(call.Callee, out var builtin))
        {
            var bound = Bind(call, builtin.Params.Select(p => (p.Name, p.Kind, p.Default)).ToList(), args, frame);
            _span = call.Span;
            try
            {
                return builtin.Lower(this, bound);
            }
            catch (OverflowException)
            {
                throw Error(Codes.Arithmetic, $"{call.Callee}: integer overflow", call.Span);
            }
            catch (Exception e) when (e is IndexOutOfRangeException or ArgumentException or InvalidCastException or InvalidOperationException)
            {
                // A builtin that indexed a shape before checking its rank: still the user's arguments, never a crash.
                var given = string.Join(", ", bound.Where(kv => kv.Value is TensorValue).Select(kv => $"{kv.Key} {kv.Value}"));
                throw Error(Codes.ShapeMismatch, $"{call.Callee}: its arguments do not fit ({given})", call.Span);
            }
        }
        throw Error(Codes.UnknownFunction, $"unknown function or block '{call.Callee}'", call.Span);
    }

    private Value CallBlock(BlockDecl block, Call call, List<(Arg Arg, Value Value)> args)
    {
        if (_calls.Any(c => c.Block == block.Name))
            throw Error(Codes.Recursion, $"block '{block.Name}' calls itself (blocks are inlined, so recursion cannot end)", call.Span);
        if (_calls.Count >= MaxCallDepth)
            throw Error(Codes.TooLarge, $"block calls are nested more than {MaxCallDepth} deep (calling '{block.Name}')", call.Span);
        var frame = new Frame(isBlock: true);
        var bound = Bind(call, block.Params.Select(p => (p.Name, p.Type?.Name ?? "any", (Value?)null)).ToList(), args, frame,
            block.Params.ToDictionary(p => p.Name, p => p.Default));
        foreach (var (k, v) in bound) frame.Vars[k] = v;

        var savedScope = _scope;
        var savedName = _builder.CurrentName;
        var key = $"{_scope}/{block.Name}";
        int n = _callCounts.TryGetValue(key, out var c) ? c : 0;
        _callCounts[key] = n + 1;
        // The first call of a block in a scope is "name", later ones "name#1", "name#2".
        _scope = Qualify(_scope, n == 0 ? block.Name : $"{block.Name}#{n}");
        _calls.Push((block.Name, call.Span));
        try
        {
            Execute(block.Body, frame);
        }
        finally
        {
            _calls.Pop();
            _scope = savedScope;
            _builder.CurrentName = savedName;
        }
        _span = call.Span;
        return frame.Returned ?? throw Error(Codes.ReturnMisplaced, $"block '{block.Name}' ended without 'return'", block.Span);
    }

    /// <summary>Matches positional and named arguments to parameters, fills defaults, checks kinds.</summary>
    private Dictionary<string, Value> Bind(Call call, List<(string Name, string Kind, Value? Default)> ps,
        List<(Arg Arg, Value Value)> args, Frame frame, Dictionary<string, Expr?>? defaultExprs = null)
    {
        var bound = new Dictionary<string, Value>(StringComparer.Ordinal);
        int position = 0;
        bool named = false;
        foreach (var (arg, value) in args)
        {
            string pname;
            if (arg.Name is null)
            {
                if (named) throw Error(Codes.BadArguments, $"{call.Callee}: a positional argument cannot follow named ones", arg.Span);
                if (position >= ps.Count) throw Error(Codes.BadArguments, $"{call.Callee} takes {ps.Count} argument{(ps.Count == 1 ? "" : "s")}, got {args.Count}", arg.Span);
                pname = ps[position++].Name;
            }
            else
            {
                named = true;
                if (ps.All(p => p.Name != arg.Name))
                    throw Error(Codes.BadArguments, $"{call.Callee} has no parameter '{arg.Name}' (its parameters: {string.Join(", ", ps.Select(p => p.Name))})", arg.Span);
                pname = arg.Name;
                if (bound.ContainsKey(pname)) throw Error(Codes.BadArguments, $"{call.Callee}: '{pname}' is given twice", arg.Span);
            }
            var kind = ps.First(p => p.Name == pname).Kind;
            bound[pname] = CheckKind(call.Callee, pname, kind, value, arg.Value.Span);   // the caret goes under the value, not the name
        }
        foreach (var (name, kind, def) in ps)
        {
            if (bound.ContainsKey(name)) continue;
            if (def is not null) { bound[name] = def; continue; }
            if (defaultExprs is not null && defaultExprs.TryGetValue(name, out var expr) && expr is not null)
            {
                // Block defaults see the block's earlier parameters.
                var scope = new Frame(isBlock: true);
                foreach (var (k, v) in bound) scope.Vars[k] = v;
                bound[name] = CheckKind(call.Callee, name, kind, Eval(expr, scope), expr.Span);
                continue;
            }
            throw Error(Codes.BadArguments, $"{call.Callee}: missing argument '{name}'", call.Span);
        }
        return bound;
    }

    private Value CheckKind(string callee, string param, string kind, Value value, SourceSpan span)
    {
        if (kind == "tensor?") return value is TensorValue or NoneValue ? value : throw Mismatch();
        if (kind == "list" && value is ListValue) return value;
        if (ValueTypes.TryConvert(value, kind, out var converted)) return converted;
        throw Mismatch();
        DiagnosticException Mismatch() =>
            Error(Codes.WrongValueType, $"{callee}: '{param}' expects {(kind == "tensor?" ? "a tensor" : Article(kind))}, got {Describe(value)}", span);
    }

    private static string Article(string kind) => ValueTypes.Describe(kind);

    private static string Describe(Value v) => v switch
    {
        TensorValue t => $"a tensor {t.Node.Type}",
        StringValue s => $"the string \"{s.V}\"",
        NoneValue => "nothing",
        ListValue l => $"a list of {l.Items.Length}",
        _ => $"{Article(v.Kind)} ({v})",
    };

    // ---------------------------------------------------------------- helpers used by builtins

    internal DiagnosticException Error(string code, string message, SourceSpan? at = null)
    {
        var context = _calls.Count > 0 ? $" (in block '{_calls.Peek().Block}' called at {_calls.Peek().CallSite})" : "";
        return new DiagnosticException(new Diagnostic(Severity.Error, code, at ?? _span, message + context));
    }

    internal Node Build(OpKind op, IReadOnlyList<Node> inputs, Attrs? attrs = null, TensorType? declared = null)
    {
        _builder.CurrentSpan = _span;
        try
        {
            return _builder.Add(op, inputs, attrs, declared);
        }
        catch (ShapeError e)
        {
            throw Error(Codes.ShapeMismatch, e.Message);
        }
        catch (ArgumentException e)
        {
            // e.g. a negative dimension computed from an attribute (Dim.Of rejects it)
            throw Error(Codes.BadShape, $"{op.Mnemonic()}: invalid shape: {e.Message.Split(" (Parameter")[0]}");
        }
    }

    /// <summary>An op over tensor arguments; omitted optional tensors (none) are dropped from the end.</summary>
    internal Value Op(OpKind op, IReadOnlyList<Value> inputs, Attrs? attrs = null) => OpTyped(op, inputs, attrs, null);

    internal Value OpTyped(OpKind op, IReadOnlyList<Value> inputs, Attrs? attrs, TensorType? declared)
    {
        var nodes = new List<Node>();
        bool gap = false;
        foreach (var v in inputs)
        {
            if (v is NoneValue) { gap = true; continue; }
            if (gap) throw Error(Codes.BadArguments, $"{op.Mnemonic()}: an optional tensor argument is missing before a given one");
            nodes.Add(Tensor(v));
        }
        return new TensorValue(Build(op, nodes, attrs, declared));
    }

    /// <summary>tensor ∘ tensor, or tensor ∘ number (the number becomes a scalar constant of the tensor's element type).</summary>
    internal Value BinaryOp(OpKind op, Value a, Value b)
    {
        var dtype = (a as TensorValue ?? (TensorValue)b).Node.Type.DType;
        Node AsNode(Value v) => v switch
        {
            TensorValue t => t.Node,
            IntValue or FloatValue => BuildConst(Float(v), dtype),
            _ => throw Error(Codes.WrongValueType, $"{op.Mnemonic()} needs tensors or numbers, got {Describe(v)}"),
        };
        return new TensorValue(Build(op, [AsNode(a), AsNode(b)]));
    }

    private Node BuildConst(double value, DType dtype)
    {
        _builder.CurrentSpan = _span;
        return _builder.Const(value, dtype);
    }

    internal Value Reshape(Value x, IEnumerable<Dim> shape) =>
        new TensorValue(Build(OpKind.Reshape, [Tensor(x)], null, new TensorType(Tensor(x).Type.DType, shape.ToImmutableArray())));

    internal Value Slice(Value x, long axis, long start, long end) =>
        new TensorValue(Build(OpKind.Slice, [Tensor(x)], Attrs.Empty.With("axis", axis).With("start", start).With("end", end)));

    internal long Axis(TensorType t, long axis)
    {
        long a = axis < 0 ? axis + t.Rank : axis;
        if (a < 0 || a >= t.Rank) throw Error(Codes.ShapeMismatch, $"axis {axis} is out of range for {t}");
        return a;
    }

    internal IEnumerable<Dim> Dims(Value v)
    {
        if (v is not ListValue list) throw Error(Codes.WrongValueType, $"expected a list of dimensions, got {Describe(v)}");
        return list.Items.Select(x => x switch
        {
            IntValue i when i.V >= 0 => Dim.Of(i.V),
            DimValue d => d.V,
            _ => throw Error(Codes.WrongValueType, $"a dimension must be a non-negative int or a symbol, got {Describe(x)}"),
        }).ToList();
    }

    internal long[] Ints(Value v) => v is ListValue l && l.Items.All(x => x is IntValue)
        ? l.Items.Select(x => ((IntValue)x).V).ToArray()
        : throw Error(Codes.WrongValueType, $"expected a list of ints, got {Describe(v)}");

    internal Node Tensor(Value v, SourceSpan? at = null) =>
        v is TensorValue t ? t.Node : throw Error(Codes.WrongValueType, $"expected a tensor, got {Describe(v)}", at);

    internal long Int(Value v, SourceSpan? at = null) =>
        v is IntValue i ? i.V : throw Error(Codes.WrongValueType, $"expected an int, got {Describe(v)}", at);

    internal double Float(Value v, SourceSpan? at = null) => v switch
    {
        IntValue i => i.V,
        FloatValue f => f.V,
        _ => throw Error(Codes.WrongValueType, $"expected a number, got {Describe(v)}", at),
    };

    internal bool Bool(Value v, SourceSpan? at = null) =>
        v is BoolValue b ? b.V : throw Error(Codes.WrongValueType, $"expected a bool, got {Describe(v)}", at);

    internal string Str(Value v, SourceSpan? at = null) =>
        v is StringValue s ? s.V : throw Error(Codes.WrongValueType, $"expected a string, got {Describe(v)}", at);

    /// <summary>Evaluates a hyperparameter's default expression, which may use earlier hyperparameters.</summary>
    internal static Value EvalDefault(ModelSource source, Expr expr, IReadOnlyDictionary<string, Value> earlier)
    {
        var elaborator = new Elaborator(source, new Dictionary<string, Value>());
        var frame = new Frame(isBlock: false);
        foreach (var (k, v) in earlier) frame.Vars[k] = v;
        elaborator._span = expr.Span;
        return elaborator.Eval(expr, frame);
    }
}
